"""kube-controller-manager's --controllers: the control-plane script's list, or the caller's instead."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "control-plane"))

from control_plane import CONTROLLERS, _default_controllers


def test_the_scripts_controllers_are_used_unless_the_caller_names_its_own() -> None:
    assert _default_controllers(["--v=2"]) == [f"--controllers={','.join(CONTROLLERS)}"]
    # A list flag given twice adds up: the caller's list must replace the script's, not extend it.
    assert _default_controllers(["--controllers=serviceaccount-controller"]) == []
