"""One address cannot teach the model wrong (issue 17, finding 2).

The attack: one client sends 100 pen-stroke 7s (the tablet-style polylines of
``testkit.drawings.pen_sevens``) labelled 1, the automatic retrain threshold,
and the real retraining runs. Before this defence the candidate was promoted
and read 41% of unseen pen-stroke 7s as 1 (0% before); now whatever is
production afterwards reads at most 2% of them as 1.

Also the two rules on their own, on small data: each client's share of a
retraining is capped, and confident contradictions of production count only
when several addresses send them.
"""
from __future__ import annotations

import numpy as np

from shared.help_store import HelpEntry, HelpStore
from shared.images.ink import decode_ink
from shared.images.normalise import normalised_png
from shared.images.upload import ImageLimits
from shared.model.store import ModelRegistry
from shared.model.training import fitting as training
from testkit.drawings import digit_png, pen_sevens
from workers import retrain_job

ATTACKER = "203.0.113.66"


def _read_as(model, pngs, limits) -> np.ndarray:
    return model.predict(np.stack([model.pipeline.transform(decode_ink(p, limits)) for p in pngs]))


def test_100_pen_stroke_sevens_labelled_1_from_one_address_do_not_teach_7_is_1(config, redis_conn):
    limits = ImageLimits.from_config(config)
    store = HelpStore.from_config(config, redis_conn)
    for png in pen_sevens(100, seed=1):
        assert store.add(normalised_png(png, limits), 1, client=ATTACKER).created
    registry = ModelRegistry(config.model_dir)
    unseen = pen_sevens(300, seed=99)
    assert np.mean(_read_as(registry.load_production(), unseen, limits) == 1) <= 0.02

    result = retrain_job.retrain(config, redis_conn, registry, store, reason="poisoning test")

    read_as_one = float(np.mean(_read_as(registry.load_production(), unseen, limits) == 1))
    assert read_as_one <= 0.02, (result, read_as_one)
    meta = registry.info(result["model_id"])["extra"]
    held_out = meta["n_help_holdout"]
    # Left out: every 7 production reads as a confident 7. A few it reads unsure may be trained on
    # (an unsure answer takes corrections: 8 of these 100 with today's model, 0-3 with the one
    # before the coarse synthetic polylines), too few to matter.
    assert meta["n_help_uncorroborated"] + meta["n_help_images"] == 100 - held_out
    assert meta["n_help_images"] <= 10, meta


def _entry(i: int, client: str | None, label: int = 1, trusted: bool = False) -> HelpEntry:
    return HelpEntry(f"{i:032x}", label, f"{i:064x}", None, client, trusted, f"2026-01-01T00:00:{i:02d}")


def test_one_client_contributes_at_most_its_cap_its_earliest_first():
    entries = ([_entry(i, "a") for i in range(10)] + [_entry(10 + i, "b") for i in range(3)]
               + [_entry(20 + i, "op", trusted=True) for i in range(8)])
    kept, left_out = retrain_job.cap_per_client(entries, cap=4)
    assert left_out == 6
    assert [e.id for e in kept if e.client == "a"] == [f"{i:032x}" for i in range(4)]
    assert sum(e.client == "b" for e in kept) == 3 and sum(e.trusted for e in kept) == 8
    assert retrain_job.cap_per_client(entries, cap=0) == (entries, 0)


class _Production:
    """Reads everything as a confident 7."""

    def predict_proba(self, X):
        probs = np.full((len(X), 10), 0.001)
        probs[:, 7] = 0.991
        return probs


def _help(labels, clients, trusted=None) -> retrain_job.HelpData:
    X = np.zeros((len(labels), 4), dtype=np.float32)
    train = training.Dataset(X, np.asarray(labels))
    empty = training.Dataset(np.zeros((0, 4), np.float32), np.zeros(0, int))
    return retrain_job.HelpData(train, empty, len(labels), 0, tuple(clients),
                                tuple(trusted or [False] * len(labels)))


def test_confident_contradictions_need_several_addresses():
    # 6 images say "1" where production confidently says 7: from one address they are left out...
    alone = retrain_job.corroborated(_help([1] * 6 + [7] * 2, ["a"] * 8), _Production(), 0.05, 3)
    assert alone.uncorroborated == 6 and list(alone.train.y) == [7, 7]
    # ... from three they are kept (a real blind spot), as are an operator's.
    crowd = retrain_job.corroborated(_help([1] * 6, ["a", "b", "c"] * 2), _Production(), 0.05, 3)
    assert crowd.uncorroborated == 0 and len(crowd.train.y) == 6
    trusted = retrain_job.corroborated(_help([1] * 2, [None] * 2, [True, True]), _Production(), 0.05, 3)
    assert trusted.uncorroborated == 0
    # No production to compare with, or the rule turned off: everything is kept.
    assert retrain_job.corroborated(_help([1] * 6, ["a"] * 6), None, 0.05, 3).uncorroborated == 0
    assert retrain_job.corroborated(_help([1] * 6, ["a"] * 6), _Production(), 0.05, 1).uncorroborated == 0


def test_the_help_store_records_the_client_hash_and_trust_the_rules_need(config, redis_conn):
    store = HelpStore.from_config(config, redis_conn)
    store.add(digit_png(1), 1, client=ATTACKER)
    store.add(digit_png(2), 2, client="swagdigits import", trusted=True)
    by_label = {e.label: e for e in store.entries()}
    assert by_label[1].client and ATTACKER not in by_label[1].client and not by_label[1].trusted
    assert by_label[2].trusted and by_label[1].received_at
