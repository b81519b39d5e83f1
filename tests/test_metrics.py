"""The metrics registry: names, labels and the text exposition."""

import threading

from nebula import metrics


def test_retry_and_circuit_samples():
    before = metrics.sample("nebula_retries_total", {"endpoint": "t-ep", "error": "ConnectionFailed"}) or 0
    metrics.record_retry("t-ep", "ConnectionFailed")
    metrics.set_circuit_state("t-ep", "open")
    assert metrics.sample("nebula_retries_total", {"endpoint": "t-ep", "error": "ConnectionFailed"}) == before + 1
    assert metrics.sample("nebula_circuit_state", {"endpoint": "t-ep"}) == 1
    metrics.set_circuit_state("t-ep", "half-open")
    assert metrics.sample("nebula_circuit_state", {"endpoint": "t-ep"}) == 2
    assert metrics.sample("nebula_circuit_transitions_total", {"endpoint": "t-ep", "state": "open"}) >= 1
    text = metrics.render().decode()
    assert 'nebula_retries_total{endpoint="t-ep",error="ConnectionFailed"}' in text
    assert "# TYPE nebula_batch_duration_seconds histogram" in text


def test_registry_created_once_under_threads():
    regs = []
    ts = [threading.Thread(target=lambda: regs.append(metrics.registry())) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len({id(r) for r in regs}) == 1


def test_import_nebula_does_not_load_prometheus():
    import subprocess
    import sys

    code = "import sys, nebula, nebula.metrics; print('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
