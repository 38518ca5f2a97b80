"""``swagdigits``: one command for every process and operator task.

Each subcommand builds its ``Config`` from the environment (flags override a
few settings) and imports only what it needs, so ``swagdigits web`` never
loads scikit-learn.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace

from shared.config import Config, ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = Config.from_env()
    except ConfigError as exc:
        parser.error(str(exc))
    if getattr(args, "port", None):
        config = replace(config, port=args.port)
    if getattr(args, "host", None):
        config = replace(config, host=args.host)
    if getattr(args, "redis_url", None):
        config = replace(config, redis_url=args.redis_url)
    logging.basicConfig(level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    return int(args.func(args, config) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="swagdigits", description="SwagDigitClassifier3000")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="start Redis (unless given), web, predict workers and retrain worker")
    up.add_argument("--port", type=int, help="web port (default: SWAGDIGITS_PORT or 5000)")
    up.add_argument("--host", help="web address (default: SWAGDIGITS_HOST or 127.0.0.1)")
    up.add_argument("--workers", type=int, default=2, help="predict workers to run (default 2)")
    up.add_argument("--redis-url", help="use this Redis instead of starting a private one")
    up.set_defaults(func=_up)

    web = sub.add_parser("web", help="run the web tier (gunicorn, threaded)")
    web.add_argument("--port", type=int)
    web.add_argument("--host")
    web.set_defaults(func=_web)

    front = sub.add_parser("front", help="run the buffering front `up` puts before the web tier")
    front.add_argument("--port", type=int)
    front.add_argument("--host")
    front.add_argument("--upstream", required=True, metavar="HOST:PORT", help="the web tier's address")
    front.set_defaults(func=_front)

    worker = sub.add_parser("worker", help="run a worker")
    worker.add_argument("kind", choices=["predict", "retrain"])
    worker.set_defaults(func=_worker)

    train = sub.add_parser("train", help="train on the shipped digits and publish to the model store")
    train.add_argument("--no-promote", action="store_true", help="publish without making it production")
    train.set_defaults(func=_train)

    model = sub.add_parser("model", help="inspect and manage model versions")
    model_sub = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    model_sub.add_parser("list", help="every version, newest first").set_defaults(func=_model_list)
    show = model_sub.add_parser("show", help="one version's metadata as JSON")
    show.add_argument("model_id")
    show.set_defaults(func=_model_show)
    from swagdigits import model_admin

    model_admin.register_model_actions(model_sub)
    model_admin.register(sub)

    # Subcommands that live in their own modules register themselves.
    from swagdigits import batch_client, evaluate, import_data

    evaluate.register(sub)
    batch_client.register(sub)
    import_data.register(sub)
    return parser


def _up(args, config: Config) -> int:
    from shared.config import is_set
    from swagdigits.supervisor import Supervisor

    # REDIS_URL given: use that server; unset: start a private one.
    redis_url = args.redis_url or (config.redis_url if is_set("redis_url") else None)
    return Supervisor(config, workers=args.workers, redis_url=redis_url).run()


def _web(args, config: Config) -> int:
    from web.server import serve

    return serve(config)


def _front(args, config: Config) -> int:
    from swagdigits.front import serve

    host, _, port = args.upstream.rpartition(":")
    max_body = max(config.max_upload_bytes, config.batch_max_bytes)
    return serve(config.host, config.port, (host, int(port)), max_body)


def _worker(args, config: Config) -> int:
    if args.kind == "predict":
        from workers.predict_worker import main as run
    else:
        from workers.retrain_worker import main as run
    return run(config)


def _train(args, config: Config) -> int:
    from shared.model.store import ModelRegistry
    from shared.model.training.publishing import train_initial

    model_id, metrics = train_initial(ModelRegistry(config.model_dir), source="swagdigits train",
                                      promote=not args.no_promote, family=config.model_family)
    print(f"model {model_id}: held-out accuracy {metrics['holdout_accuracy']:.4f} "
          f"({metrics['n_holdout']} digits), trained in {metrics['train_seconds']}s"
          f"{'' if args.no_promote else ', now production'}")
    return 0


def _model_list(args, config: Config) -> int:
    from shared.model.store import ModelRegistry

    models = ModelRegistry(config.model_dir).list()
    if not models:
        print("no models yet: run `swagdigits train`")
        return 0
    print(f"{'MODEL ID':36}  {'CREATED':19}  {'STATES':20}  ACCURACY")
    for m in models:
        acc = m.extra.get("holdout_accuracy", m.extra.get("candidate_accuracy", ""))
        print(f"{m.model_id:36}  {m.created:19}  {','.join(m.states) or '-':20}  {acc}")
    return 0


def _model_show(args, config: Config) -> int:
    from shared.model.store import ModelRegistry, ModelStoreError

    registry = ModelRegistry(config.model_dir)
    try:
        info = registry.info(args.model_id)
    except ModelStoreError as exc:
        print(exc, file=sys.stderr)
        return 1
    info["states"] = [s.states for s in registry.list() if s.model_id == args.model_id][0]
    print(json.dumps(info, indent=2, default=str))
    return 0
