from gendurable import durable_job


@durable_job
def double(n: int) -> int:
    return n * 2


def test_drain_runs_job(gendurable_app):
    handle = double.delay(21)
    assert gendurable_app.drain() == {"done": 1}
    assert handle.result() == 42
