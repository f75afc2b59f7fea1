"""Pure signal processing: numpy and scipy only, no files, devices, threads or logging."""
