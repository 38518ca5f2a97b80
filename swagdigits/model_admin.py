"""Operator commands for the model lifecycle: ``model promote|rollback`` and ``retrain``.

They change the same store the workers load from and announce the change on
Redis, so every running predict worker swaps within a second; they live here
(registered by ``swagdigits.cli``) to keep the CLI module small.
"""
from __future__ import annotations

import json
import sys
import time

from shared.config import Config


def register_model_actions(model_sub) -> None:
    promote = model_sub.add_parser("promote", help="make a version production, in every worker")
    promote.add_argument("model_id")
    promote.set_defaults(func=_promote)
    model_sub.add_parser("rollback", help="re-promote the most recently retired version").set_defaults(
        func=_rollback)
    shadow = model_sub.add_parser("shadow", help="score live drawings with a version too, after production "
                                                 "answered (see README: Shadow models)")
    shadow.add_argument("model_id")
    shadow.add_argument("--share", type=float, default=1.0, help="share of drawings it scores (default 1)")
    shadow.add_argument("--stop", action="store_true", help="stop scoring with it and print its tallies")
    shadow.set_defaults(func=_shadow)
    canary = model_sub.add_parser("canary", help="answer a share of live drawings with a version; rolled "
                                                 "back by itself if users correct it more (README: Canary)")
    canary.add_argument("model_id", nargs="?")
    canary.add_argument("--share", type=float, default=0.1, help="share of drawings it answers (default 0.1)")
    canary.add_argument("--stop", action="store_true", help="end the canary and print its tallies")
    canary.set_defaults(func=_canary)


def register(sub) -> None:
    retrain = sub.add_parser("retrain", help="retrain on shipped digits + help data (queued, coalesced)")
    retrain.add_argument("--wait", action="store_true", help="wait for the retrain worker's verdict")
    retrain.add_argument("--timeout", type=float, default=600.0, help="seconds --wait waits (default 600)")
    retrain.add_argument("--in-process", action="store_true",
                         help="train here instead of queueing for the retrain worker")
    retrain.set_defaults(func=_retrain)


def _connect(config: Config):
    from shared.messaging.connection import connect

    return connect(config.redis_url)


def _promote(args, config: Config) -> int:
    from shared.messaging import model_events
    from shared.model.store import ModelRegistry, ModelStoreError
    from shared.messaging.push import Pusher

    try:
        previous = model_events.promote_and_announce(
            ModelRegistry(config.model_dir), _connect(config), args.model_id,
            reason="swagdigits model promote", pusher=Pusher(config.redis_url))
    except ModelStoreError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"model {args.model_id} is production (was {previous})")
    return 0


def _rollback(args, config: Config) -> int:
    from shared.messaging import model_events
    from shared.model.store import ModelRegistry, ModelStoreError
    from shared.messaging.push import Pusher

    try:
        model_id, previous = model_events.rollback_and_announce(
            ModelRegistry(config.model_dir), _connect(config), pusher=Pusher(config.redis_url))
    except ModelStoreError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"rolled back: model {model_id} is production (was {previous})")
    return 0


def _shadow(args, config: Config) -> int:
    from shared.messaging import shadows
    from shared.model.store import ModelRegistry

    conn = _connect(config)
    if args.stop:
        if not shadows.stop(conn, args.model_id):
            print(f"model {args.model_id} is not in shadow", file=sys.stderr)
            return 1
        print(json.dumps({"stopped": args.model_id, **shadows.stats(conn, args.model_id)}, indent=2))
        return 0
    registry = ModelRegistry(config.model_dir)
    if args.model_id not in {m.model_id for m in registry.list()}:
        print(f"no model {args.model_id} in {config.model_dir}", file=sys.stderr)
        return 1
    if not 0 < args.share <= 1:
        print("--share must be in (0, 1]", file=sys.stderr)
        return 1
    shadows.start(conn, args.model_id, args.share)
    print(f"model {args.model_id} scores {args.share:.0%} of live drawings in shadow")
    return 0


def _canary(args, config: Config) -> int:
    from shared.messaging import canary
    from shared.model.store import ModelRegistry

    conn = _connect(config)
    if args.stop:
        stopped = canary.stop(conn, reason="swagdigits model canary --stop")
        if stopped is None:
            print("no canary is running", file=sys.stderr)
            return 1
        print(json.dumps({"stopped": stopped.version, **canary.stats(conn, stopped.version)}, indent=2))
        return 0
    registry = ModelRegistry(config.model_dir)
    production = registry.production_id(missing_ok=True)
    if args.model_id not in {m.model_id for m in registry.list()} or args.model_id == production:
        print(f"{args.model_id} is not a model in {config.model_dir} other than production", file=sys.stderr)
        return 1
    if not 0 < args.share <= 1:
        print("--share must be in (0, 1]", file=sys.stderr)
        return 1
    canary.start(conn, args.model_id, args.share, production=production)
    print(f"model {args.model_id} answers {args.share:.0%} of live drawings as a canary (production {production})")
    return 0


def _retrain(args, config: Config) -> int:
    conn = _connect(config)
    if args.in_process:
        from shared.help_store import HelpStore
        from shared.model.store import ModelRegistry
        from shared.messaging.push import Pusher
        from workers.retrain_job import retrain

        result = retrain(config, conn, ModelRegistry(config.model_dir), HelpStore.from_config(config, conn),
                         reason="swagdigits retrain --in-process", pusher=Pusher(config.redis_url))
        print(json.dumps(result, indent=2))
        return 0
    from rq.job import JobStatus

    from shared.messaging import retrain_trigger

    requested = retrain_trigger.request_retrain(conn, reason="swagdigits retrain")
    print(f"retrain job {requested.job_id} "
          f"{'queued' if requested.queued else 'already waiting; this request joined it'}")
    if not args.wait:
        return 0
    deadline = time.monotonic() + args.timeout
    job = retrain_trigger.fetch_job(conn, requested.job_id)
    while time.monotonic() < deadline:
        status = job.get_status(refresh=True)
        if status == JobStatus.FINISHED:
            print(json.dumps(job.return_value(refresh=True), indent=2))
            return 0
        if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
            print(f"retrain job {job.id} {_name(status)}", file=sys.stderr)
            return 1
        time.sleep(0.5)
    print(f"retrain job {job.id} still {_name(job.get_status())} after {args.timeout:g}s", file=sys.stderr)
    return 1


def _name(status) -> str:
    """RQ's JobStatus is a str enum, which an f-string spells 'JobStatus.QUEUED': say 'queued'."""
    return getattr(status, "value", status)
