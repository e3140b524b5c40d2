"""What the README must tell a user before they run anything it describes."""

from __future__ import annotations

from support import ROOT


def test_readme_says_target_files_are_trusted_code() -> None:
    # `build` executes a target YAML's build.cc with its build.cflags (and its build.qemu): the README says so
    # beside the commands that take a target, before the layout.
    text = (ROOT / "README.md").read_text()
    statement = text.index("**Target files are code.**")
    paragraph = text[statement : text.index("\n\n", statement)]
    for key in ("`build.cc`", "`build.cflags`", "`build.qemu`", "trust"):
        assert key in paragraph, key
    assert text.index("tinycompile targets") < statement < text.index("## Layout")
