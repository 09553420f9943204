"""`nalgae run`, `web`, `worker`, `scheduler`: start the long-running processes (runtime.py)."""

from __future__ import annotations

import asyncio

import click

from cli.common import Command, Ctx, emit, pass_ctx

# runtime (uvicorn, the web app, PTB, the worker) is imported by these commands only:
# measured, it adds ~1.1 s to every other command's start (0.4 s -> 1.5 s for `import cli`).


@click.command("run", cls=Command)
@pass_ctx
def run_cmd(ctx: Ctx) -> None:
    """Start everything in one process (web, bot, worker, scheduler; sandbox without a token)."""
    import runtime

    runtime.run_fast(lambda: runtime.serve(ctx.settings, everything=True, say=click.echo))


@click.command("web", cls=Command)
@pass_ctx
def web_cmd(ctx: Ctx) -> None:
    """Start the web app and the bot (webhook in production); stateless, run several."""
    import runtime

    runtime.run_fast(lambda: runtime.serve(ctx.settings, everything=False, say=click.echo))


@click.command("worker", cls=Command)
@click.option("--burst", is_flag=True, help="Deliver everything due, then exit.")
@click.option("--concurrency", type=click.IntRange(1, 2000), default=None,
              help="Requests in flight per bot.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=None,
              help="Rows claimed at once (unpaced bots).")
@click.option("--lease-seconds", type=click.FloatRange(min=1), default=None,
              help="How long claimed rows stay with this worker if it dies.")
@click.option("--request-timeout", type=click.FloatRange(min=0.1), default=None)
@click.option("--backoff-base", type=click.FloatRange(min=0), default=None,
              help="Seconds before the first retry of a 5xx, timeout or lost connection.")
@click.option("--backoff-max", type=click.FloatRange(min=0), default=None,
              help="Longest wait between two retries, in seconds (default 300).")
@click.option("--retry-window", type=click.FloatRange(min=0), default=None,
              help="Seconds after a message's first try during which 5xx, timeouts and "
                   "lost connections are retried before it fails (default 3600).")
@click.option("--json", "as_json", is_flag=True, help="Print the delivery counts as JSON.")
@pass_ctx
def worker_cmd(ctx: Ctx, burst: bool, concurrency: int | None, batch_size: int | None,
               lease_seconds: float | None, request_timeout: float | None,
               backoff_base: float | None, backoff_max: float | None,
               retry_window: float | None, as_json: bool) -> None:
    """Deliver broadcasts: claim outbox rows, pace them, send, record outcomes."""
    import runtime
    from worker import WorkerOptions

    options = WorkerOptions()
    for name, value in (("concurrency", concurrency), ("batch_size", batch_size),
                        ("lease_seconds", lease_seconds), ("request_timeout", request_timeout),
                        ("backoff_base", backoff_base), ("backoff_max", backoff_max),
                        ("retry_window", retry_window)):
        if value is not None:
            setattr(options, name, value)
    result = runtime.run_fast(lambda: runtime.work(ctx.settings, options, burst=burst))
    emit(result, as_json, lambda r: ", ".join(f"{k} {v}" for k, v in r.items()))


@click.command("scheduler", cls=Command)
@pass_ctx
def scheduler_cmd(ctx: Ctx) -> None:
    """Run the scheduled ticks (due broadcasts, deadlines); several may run at once."""
    import runtime

    asyncio.run(runtime.schedule(ctx.settings))


COMMANDS = [run_cmd, web_cmd, worker_cmd, scheduler_cmd]
