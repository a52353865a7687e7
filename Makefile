# Two commands: `make demo` (install into .venv, run stack_blocks on the sim lab with simjudge)
# and `make test` (install into .venv, run the test suite). Nothing needs a GPU, a key or the network
# beyond the package registry.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
TASK ?= configs/tasks/stack_blocks.yaml
SEED ?= 0

.PHONY: install demo test lint bench clean

$(BIN)/antigrounding: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The tests also need pytest and the local-VLM extra (torch CPU + transformers, pinned) for the
# transformers backend's tiny-model test; the demo does not.
$(VENV)/.test-deps: $(BIN)/antigrounding
	$(BIN)/python -m pip install --quiet -e ".[test,local-vlm]"
	touch $@

install: $(BIN)/antigrounding

demo: install
	$(BIN)/antigrounding run --task $(TASK) --seed $(SEED)

test: $(VENV)/.test-deps
	$(BIN)/python -m pytest -p no:dash

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .

bench: install
	$(BIN)/antigrounding bench --seeds 10

clean:
	rm -rf $(VENV) runs *.egg-info

# LIBERO (robosuite on MuJoCo) as a second, independent lab: its own virtual environment (LIBERO pins its own
# robosuite/MuJoCo/numpy) and its object models converted to OBJ + URDF for the planner's twin. Both folders are
# generated and git-ignored. See docs/libero.md.
LIBERO_VENV ?= .venv-libero
LIBERO_ASSETS ?= .libero-assets
LIBERO_SUITES ?= libero_object,libero_spatial,libero_goal,libero_10
.PHONY: libero
libero: $(LIBERO_ASSETS)/manifest.json

$(LIBERO_VENV)/.installed: robot_io/libero/requirements.txt
	$(PYTHON) -m venv $(LIBERO_VENV)
	$(LIBERO_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LIBERO_VENV)/bin/python -m pip install --quiet -r robot_io/libero/requirements.txt
	touch $@

$(LIBERO_ASSETS)/manifest.json: $(LIBERO_VENV)/.installed robot_io/libero/prepare.py
	MUJOCO_GL=egl PYTHONPATH=$(CURDIR) $(LIBERO_VENV)/bin/python -m robot_io.libero.prepare --out $(LIBERO_ASSETS) \
		--suites $(LIBERO_SUITES)
