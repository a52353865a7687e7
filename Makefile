# Two commands on a bare Debian/Ubuntu machine with Python 3.11:
#   make demo   system libraries (apt-get when root), .venv, the core install, stack_blocks on the sim lab
#               with the simjudge scorer (no key, no GPU)
#   make test   the same set-up plus the test and local-vlm extras (and franka-sim in its own venv), then the
#               whole test suite
# Nothing needs a GPU, a key or the network beyond the package registries.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
FRANKA_SIM_VENV ?= .venv-franka-sim
TASK ?= stack_blocks
SEED ?= 0
# shared object the wheels load : Debian package that provides it
# (open3d links libusb and libgomp; PyBullet's EGL renderer wants libEGL + Mesa's EGL vendor and GL)
SYSTEM_LIBS := libusb-1.0.so.0:libusb-1.0-0 libgomp.so.1:libgomp1 libEGL.so.1:libegl1 \
               libEGL_mesa.so.0:libegl-mesa0 libGL.so.1:libgl1

.PHONY: system-deps install demo test lint bench clean franka-sim

# Checks before anything is created: the libraries are installed with apt-get when running as root and
# missing; otherwise make stops here with the exact command to run.
system-deps:
	@missing=""; \
	for pair in $(SYSTEM_LIBS); do \
	  PATH="$$PATH:/sbin:/usr/sbin" ldconfig -p | grep -q "$${pair%%:*}" || missing="$$missing $${pair##*:}"; \
	done; \
	"$(PYTHON)" -c 'import sys, ensurepip, venv; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || { \
	  v=$$("$(PYTHON)" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null); \
	  if [ "$$v" = 3.11 ]; then missing="$$missing python3.11-venv"; \
	  else echo "make: Python 3.11 is required (found '$(PYTHON)' $$v); install python3.11 or run make PYTHON=/path/to/python3.11" >&2; exit 1; fi; }; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "make: installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null || exit 1; \
	  else \
	    echo "make: missing system packages:$$missing" >&2; \
	    echo "make: run first:  sudo apt-get install -y$$missing" >&2; exit 1; \
	  fi; \
	fi

$(BIN)/antigrounding: pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The tests also need pytest, the local-VLM extra (torch CPU + transformers, pinned) for the transformers
# backend's tiny-model test, and the vendor extras whose clients are tested against simulators and fake
# controllers; the demo needs none of them.
TEST_EXTRAS ?= test,local-vlm,ur,franka,xarm,realsense,calibrate
$(VENV)/.test-deps: $(BIN)/antigrounding pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[$(TEST_EXTRAS)]"
	touch $@

install: system-deps $(BIN)/antigrounding

demo: install
	$(BIN)/antigrounding run --task $(TASK) --seed $(SEED)

# FRANKA_SIM_PYTHON / FR3_MJCF switch on the franka-sim reflex test (tests/robot_io/test_franka_driver.py)
test: system-deps $(VENV)/.test-deps $(FRANKA_SIM_VENV)/.installed
	FRANKA_SIM_PYTHON=$(CURDIR)/$(FRANKA_SIM_VENV)/bin/python FR3_MJCF=$(CURDIR)/$(FRANKA_SIM_VENV)/fr3/fr3.xml \
		$(BIN)/python -m pytest -p no:dash

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .

bench: install
	$(BIN)/antigrounding bench --seeds 10

clean:
	rm -rf $(VENV) $(FRANKA_SIM_VENV) runs *.egg-info build

# franka-sim (Franka's FCI simulator with the FCI's motion limits, for the real-reflex test) in its own virtual
# environment: it pins numpy 1.26 and mujoco < 3.3. Its FR3 model is franky-sim's fr3.xml with its meshes, copied from
# the test venv into $(FRANKA_SIM_VENV)/fr3 (franka-sim would download one at run time). The venv ignores itself in git.
franka-sim: $(FRANKA_SIM_VENV)/.installed

$(FRANKA_SIM_VENV)/.installed: tests/fakes/franka_sim_requirements.txt | $(VENV)/.test-deps
	$(PYTHON) -m venv $(FRANKA_SIM_VENV)
	echo '*' > $(FRANKA_SIM_VENV)/.gitignore
	$(FRANKA_SIM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r tests/fakes/franka_sim_requirements.txt
	$(BIN)/python tests/fakes/franka_sim_process.py $(FRANKA_SIM_VENV)/fr3
	touch $@

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

$(LIBERO_ASSETS)/manifest.json: $(LIBERO_VENV)/.installed robot_io/libero/prepare.py robot_io/libero/textured.py \
		robot_io/libero/fixtures.py
	MUJOCO_GL=egl PYTHONPATH=$(CURDIR) $(LIBERO_VENV)/bin/python -m robot_io.libero.prepare --out $(LIBERO_ASSETS) \
		--suites $(LIBERO_SUITES)
