"""The one config locator: shipped configs are package data, a user's folders come first, names and paths both
work, unknown names get a did-you-mean, and every shipped file is declared as package data."""

import fnmatch
import tomllib
from pathlib import Path

import pytest

import configs
from planner.task import load_task
from tests.conftest import REPO


@pytest.fixture
def user_dirs():
    yield configs.set_user_dirs
    configs.set_user_dirs(())


def test_shipped_names_and_paths():
    assert {"stack_blocks", "pick_place_tray"} <= set(configs.names("tasks"))
    assert {"v1", "v1-terse"} <= set(configs.names("prompts"))
    assert configs.find("robots", "panda") == configs.shipped("robots", "panda.yaml")
    assert configs.find("prompts", "v1").is_dir()
    path = configs.shipped("tasks", "stack_blocks.yaml")
    assert configs.find("tasks", str(path)) == path


def test_unknown_name_gets_a_did_you_mean():
    with pytest.raises(configs.ConfigNotFoundError, match=r"got 'stak_blocks'; did you mean 'stack_blocks'"):
        configs.find("tasks", "stak_blocks")
    with pytest.raises(configs.ConfigNotFoundError,
                       match="nope.yaml: field 'tasks': expected an existing task file, got no such file"):
        configs.find("tasks", "nope.yaml")
    with pytest.raises(ValueError, match="config kind 'task'"):
        configs.find("task", "stack_blocks")


def test_a_task_loads_by_name_and_by_path():
    by_name = load_task("stack_blocks").planner
    by_path = load_task(str(configs.shipped("tasks", "stack_blocks.yaml"))).planner
    assert by_name == by_path
    with pytest.raises(configs.InputError, match="did you mean 'stack_blocks'"):
        load_task("stack_block")


def test_user_folder_is_searched_first(tmp_path, user_dirs):
    shipped = (configs.shipped("tasks", "stack_blocks.yaml")).read_text()
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "stack_blocks.yaml").write_text(shipped.replace("max_steps: ", "max_steps: 1 #"))
    (tmp_path / "tasks" / "my_stack.yaml").write_text(shipped)
    user_dirs([str(tmp_path)])
    assert configs.find("tasks", "stack_blocks") == (tmp_path / "tasks" / "stack_blocks.yaml").resolve()
    assert load_task("stack_blocks").planner.max_steps == 1
    assert "my_stack" in configs.names("tasks") and "pick_place_tray" in configs.names("tasks")
    assert configs.file("views.yaml") == configs.shipped("views.yaml")   # not overridden: the shipped one
    with pytest.raises(configs.ConfigNotFoundError, match="expected an existing folder"):
        user_dirs([str(tmp_path / "missing")])


def test_every_shipped_config_is_package_data():
    """A config file that the package-data globs miss would be absent from a wheel (pip install .)."""
    patterns = tomllib.loads((Path(REPO) / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    root = Path(REPO) / "configs"
    shipped = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
               and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert shipped, "no shipped configs found"
    missed = [f for f in shipped if not any(fnmatch.fnmatch(f, pat) and f.count("/") == pat.count("/")
                                            for pat in patterns["configs"])]
    assert missed == []
