"""The panel's words (app statuses, job states, targets, steps) are the Python package's: the
TypeScript copy is generated from them and must not drift."""

from fal_notebook.server.vocabulary import TYPESCRIPT, typescript


def test_the_panels_vocabulary_is_generated_from_the_packages():
    assert TYPESCRIPT.read_text() == typescript(), (
        "labextension/src/vocabulary.ts is out of date: run `python -m fal_notebook.server.vocabulary`."
    )
    assert "'interrupted'" in typescript().replace('"', "'") and "crash-looping" in typescript()
