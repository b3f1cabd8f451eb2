"""The documentation: a short README at the front door, a page per subject under docs/, and every link between
them resolving inside the repository."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BENCH_README = ROOT / "bench" / "README.md"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*```.*?^\s*```", re.S | re.M)


def documents() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md")), BENCH_README]


def prose(path: Path) -> str:
    """The page without its fenced blocks (shell comments are not headings, code is not a link)."""
    return FENCE.sub("", path.read_text())


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#{1,6} (.+)$", prose(path), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    broken = []
    for target in LINK.findall(prose(path)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):
            continue  # a URL with a scheme is not a file of the repository
        file_part, _, fragment = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.is_relative_to(root):
            broken.append(f"{target}: leaves the repository")
        elif not resolved.is_file():
            broken.append(f"{target}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target}: no heading #{fragment} in {resolved.relative_to(root)}")
    return broken


def test_every_relative_link_resolves_inside_the_repository() -> None:
    broken = {str(path.relative_to(ROOT)): links for path in documents() if (links := broken_links(path))}
    assert broken == {}


def test_the_link_check_catches_a_link_out_and_a_missing_anchor(tmp_path: Path) -> None:
    (repository := tmp_path / "repository").mkdir()
    (tmp_path / "SPEC.md").write_text("# Outside\n")
    (docs := repository / "docs").mkdir()
    (docs / "runs.md").write_text("# Runs\n\n## Timeouts, `and` more\n\n```sh\n# not a heading\n```\n")
    (page := docs / "page.md").write_text(
        "[spec](../../SPEC.md) [gone](gone.md) [runs](runs.md#no-such-heading) [ok](runs.md#timeouts-and-more)\n"
        "[not a heading](runs.md#not-a-heading) [url](https://example.com/x) [here](#page)\n# Page\n"
    )
    assert broken_links(page, repository) == [
        "../../SPEC.md: leaves the repository",
        "gone.md: no such file",
        "runs.md#no-such-heading: no heading #no-such-heading in docs/runs.md",
        "runs.md#not-a-heading: no heading #not-a-heading in docs/runs.md",
    ]


def test_the_readme_is_a_front_door_that_links_every_page() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move the detail to a page under docs/"
    linked = {target.partition("#")[0] for target in LINK.findall(prose(README))}
    pages = {f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md")} | {"bench/README.md"}
    assert pages - linked == set()
