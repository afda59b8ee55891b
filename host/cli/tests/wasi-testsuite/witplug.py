# Runtime adapter for the official wasi-testsuite runner (github.com/WebAssembly/wasi-testsuite,
# branch prod/testsuite-base, Python >= 3.12): copy it into its adapters/ directory and run
#   WITPLUG=/path/to/witplug ./run-tests -r adapters/witplug.py
import os
import shlex
import subprocess
from typing import Dict, List, Tuple, Optional

WITPLUG = shlex.split(os.getenv("WITPLUG", "witplug"))


def get_name() -> str:
    return "witplug"


def get_version() -> str:
    result = subprocess.run(WITPLUG[0:1] + ["--version"], encoding="UTF-8",
                            capture_output=True, check=True)
    return result.stdout.split()[1]


def get_wasi_versions() -> List[str]:
    return ["wasm32-wasip1"]


def get_wasi_worlds() -> List[str]:
    return ["wasi:cli/command"]


def compute_argv(test_path: str,
                 args_env_root: Tuple[List[str], Dict[str, str], Optional[str]],
                 proposals: List[str],
                 wasi_world: str,
                 wasi_version: str) -> List[str]:
    args, env, root = args_env_root
    argv = WITPLUG + ["run"]
    for k, v in env.items():
        argv += ["--env", f"{k}={v}"]
    if root:
        argv += ["--dir", f"{root}::/"]
    argv += [test_path, "--"] + args
    return argv
