"""The repository stands alone: its documents link only to files in the repository."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted(
    [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("systemd/*.md")]
    + [p for p in [ROOT / "CHANGELOG.md"] if p.exists()]
)
# [text](target) and ![alt](target); the target ends at the first space or ')'.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)")


def _links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # code is not a link
    return LINK.findall(text)


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_point_into_the_repository(doc):
    bad = []
    for target in _links(doc):
        if target.startswith("#"):
            continue
        if "://" in target or target.startswith("mailto:"):
            bad.append(f"{target}: outside the repository")
            continue
        resolved = (doc.parent / target.split("#")[0]).resolve()
        if not resolved.is_relative_to(ROOT):
            bad.append(f"{target}: outside the repository")
        elif not resolved.exists():
            bad.append(f"{target}: no such file")
    assert not bad, f"{doc.relative_to(ROOT)}: " + "; ".join(bad)


def test_documents_found():
    assert ROOT / "docs" / "contract.md" in DOCUMENTS


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_fences_stand_on_their_own_lines(doc):
    """A fence is a line of its own (``` and an optional language), and they pair up: text after
    a closing fence on the same line would render as code down to the next fence."""
    bad, fences = [], 0
    for number, line in enumerate(doc.read_text().splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fences += 1
            if not re.fullmatch(r"```\w*", stripped):
                bad.append(f"line {number}: {stripped[:40]!r}")
    assert not bad, f"{doc.relative_to(ROOT)}: text beside a fence: " + "; ".join(bad)
    assert fences % 2 == 0, f"{doc.relative_to(ROOT)}: {fences} fences, one unclosed"


def test_metric_names_in_the_docs_are_the_ones_served():
    """Every `streamconv_*` metric the README and docs/ name is in `GET /metrics`, spelt as
    served (a counter ends in `_total`)."""
    from prometheus_client.parser import text_string_to_metric_families

    from streamconv.control.metrics import registry_for, render

    device = {"uri": "device:x", "state": "running", "reopens": 0}
    status = {
        **{k: 0 for k in ("frames_in", "frames_out", "overflows", "underflows")},
        **{k: 0 for k in ("dropped_frames", "reloads_failed", "clipped")},
        "source": device, "sink": device, "detections": {"bell": 1}, "load": 0.1,
        "uptime_s": 1.0, "config_generation": 1, "sample_rate": 48000.0,
    }  # fmt: skip
    text = render(registry_for(lambda: status)).decode()
    served = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    docs = [p for p in DOCUMENTS if p.name != "CHANGELOG.md"]  # the changelog is history
    named = {m for p in docs for m in re.findall(r"\bstreamconv_[a-z_]+", p.read_text())}
    assert named, "no metric named in the docs"
    assert named <= served, sorted(named - served)
