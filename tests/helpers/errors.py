"""The assertion every bad-input test makes: one clear message, a non-zero exit, nothing that looks like success."""

from __future__ import annotations

from helpers.runs import quick, train_in_process


def assert_one_clear_message(overrides, message, tiny_backbone, run, capsys, monkeypatch, run_json=True):
    """``tunelab train`` with the quick settings plus ``overrides``: a non-zero exit, ``message`` on stderr,
    no traceback, no metrics.json, and (``run_json``) the run recorded as failed with that message."""
    import json
    import re

    for override in [o for o in overrides if o.startswith("+env_cache=")]:  # an environment, not a config key
        monkeypatch.setenv("TUNELAB_CACHE", override.split("=", 1)[1])
        overrides = [o for o in overrides if o != override]
    backbone = (
        []
        if any(o.startswith(("model.backbone", "model=")) for o in overrides)
        else [f"model.backbone={tiny_backbone}"]
    )
    base = [o for o in quick(tiny_backbone, run) if not o.startswith(("model.backbone", "data.max_samples"))]
    code = train_in_process(*base, *backbone, *overrides)
    err = capsys.readouterr().err
    assert code != 0
    assert re.search(message, err, re.S), err[-2000:]
    assert "Traceback" not in err
    assert not (run / "metrics.json").exists()
    if run_json:
        info = json.loads((run / "run.json").read_text())
        assert info["status"] == "failed" and info["exit_status"] != 0
        assert re.search(message, info["error"], re.S), info["error"][:2000]
