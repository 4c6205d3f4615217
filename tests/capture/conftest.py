import pytest
from IPython.core.interactiveshell import InteractiveShell


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    """Each test captures into its own folder with its own FAL_NOTEBOOK_HOME."""
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def shell():
    """A real IPython shell with the extension loaded; cells run with history like a kernel."""
    ip = InteractiveShell.instance()
    ip.reset(new_session=True)
    ip.extension_manager.load_extension("fal_notebook")

    def run(source: str):
        result = ip.run_cell(source, store_history=True)
        result.value = ip.user_ns["Out"].get(result.execution_count)  # what the cell displayed
        return result

    ip.run = run
    yield ip
    ip.reset(new_session=True)
