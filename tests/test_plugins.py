"""Connectors from installed packages (entry point group ``nebula.connectors``): found when named or
listed, looked up only then, never replacing a built-in connector."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_plugin_connector_is_found_only_when_needed(tmp_path):
    site = tmp_path / "site"
    (site / "fancy_nebula_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "fancy_nebula_plugin-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fancy-nebula-plugin\nVersion: 1.0\n")
    (site / "fancy_nebula_plugin-1.0.dist-info" / "entry_points.txt").write_text(
        "[nebula.connectors]\nsource.fancy = fancy_plugin:FancySource\nsource.csv = fancy_plugin:Shadow\n")
    (site / "fancy_plugin.py").write_text("class FancySource: pass\nclass Shadow: pass\n")
    code = textwrap.dedent("""
        import sys
        from nebula.connectors import base
        assert base.get("source", "csv").target.startswith("nebula."), "a built-in is never replaced"
        assert "importlib.metadata" not in sys.modules, "plugins were scanned for a built-in name"
        spec = base.get("source", "fancy")
        assert spec.load().__name__ == "FancySource"
        assert "fancy" in [s.name for s in base.connectors("source")]
        try:
            base.get("source", "nope")
        except Exception as e:
            assert "unknown source 'nope'" in str(e) and "fancy" in str(e), e
        else:
            raise AssertionError("no error")
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
