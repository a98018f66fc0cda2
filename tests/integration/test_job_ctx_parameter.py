"""Where a job's ctx parameter stands in its signature must not change how arguments arrive."""

from gendurable import durable_job


@durable_job
def ctx_first(ctx, user_id: int, *, template: str = "default") -> list:
    return [ctx.attempt, user_id, template]


@durable_job
def ctx_between(user_id: int, ctx, *tags: str) -> list:
    return [user_id, ctx.id > 0, list(tags)]


def test_leading_ctx_gets_context(gendurable_app):
    handle = ctx_first.delay(42, template="short")
    gendurable_app.drain()
    assert handle.result() == [1, 42, "short"]


def test_ctx_before_varargs(gendurable_app):
    handle = ctx_between.delay(7, "a", "b")
    gendurable_app.drain()
    assert handle.result() == [7, True, ["a", "b"]]
