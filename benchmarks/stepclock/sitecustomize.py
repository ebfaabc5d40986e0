"""Benchmark-only step clock (benchmarks/overhead.py): one TrainerCallback in every transformers Trainer of a process.

Why a ``sitecustomize``: the two sides of a comparison must be timed by the same callback, and one side is the
real ``visionr1 train`` command, whose stage trains in a child process of its own. With this folder on
``PYTHONPATH`` and ``VISIONR1_STEP_CLOCK`` naming a file, every Python process (children included) appends one
JSON line per event to that file: ``train_begin`` and every logging step (``log``; the end-of-training summary
is left out), each with the wall-clock time, the process's CPU time (user + system, all its threads) and the
step. The callback is added to ``transformers.trainer.DEFAULT_CALLBACKS`` when that module is first imported, so
nothing in visionr1 or TRL is changed or told. Without the variable this file does nothing.
"""

import os

_PATH = os.environ.get("VISIONR1_STEP_CLOCK")

if _PATH:
    import importlib.abc
    import importlib.util
    import sys

    def _clock_class():
        import json
        import time

        from transformers.trainer_callback import TrainerCallback

        class StepClock(TrainerCallback):
            def _write(self, event, state):
                row = {"event": event, "step": state.global_step, "wall": time.time(), "cpu": time.process_time(),
                       "pid": os.getpid()}
                with open(_PATH, "a") as f:
                    f.write(json.dumps(row) + "\n")

            def on_train_begin(self, args, state, control, **kwargs):
                self._write("train_begin", state)

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "train_runtime" not in logs:
                    self._write("log", state)

        return StepClock

    class _AddClock(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "transformers.trainer":
                return None
            sys.meta_path.remove(self)  # find the real module, once
            spec = importlib.util.find_spec(name)
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                module.DEFAULT_CALLBACKS.append(_clock_class())

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _AddClock())
