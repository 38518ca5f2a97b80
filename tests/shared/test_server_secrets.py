"""The server's secret key: given by the operator, or made once and kept in a 0600 file.

Every process of one deployment must derive the same keys (the holdout split
and client hashes are shared by web processes, the retrain worker and the
CLI), for ever (a split that changed would move images between training and
evaluation), and no client may learn them.
"""
from __future__ import annotations

import stat
import subprocess
import sys

import pytest

from shared.config import Config, ConfigError
from shared.server_secrets import CLIENT_HASH, HOLDOUT, KEY_FILE, ServerSecrets


def test_a_key_is_made_once_into_a_0600_file_and_read_back_by_every_later_process(tmp_path):
    secrets_dir = tmp_path / "secrets"
    first = ServerSecrets(secrets_dir)
    key = first.key(HOLDOUT)
    path = secrets_dir / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    assert ServerSecrets(secrets_dir).key(HOLDOUT) == key            # a restart
    child = subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; from shared.server_secrets import "
         "ServerSecrets, HOLDOUT; print(ServerSecrets(Path(sys.argv[1])).key(HOLDOUT).hex())",
         str(secrets_dir)], capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == key.hex()                          # another process
    assert ServerSecrets(tmp_path / "elsewhere").key(HOLDOUT) != key   # another deployment


def test_each_purpose_gets_its_own_key(tmp_path):
    secrets = ServerSecrets(tmp_path / "secrets")
    assert secrets.key(HOLDOUT) != secrets.key(CLIENT_HASH)
    assert len(secrets.key(HOLDOUT)) == 32


def test_a_given_key_is_used_and_nothing_is_written(tmp_path):
    given = "x" * 40
    a = ServerSecrets(tmp_path / "a", given=given)
    b = ServerSecrets(tmp_path / "b", given=given)
    assert a.key(HOLDOUT) == b.key(HOLDOUT) != ServerSecrets(tmp_path / "c", given="y" * 40).key(HOLDOUT)
    assert not (tmp_path / "a").exists()


def test_the_key_file_lives_under_the_data_dirs_secrets_not_beside_the_help_data(tmp_path):
    config = Config.from_env({}, data_dir=tmp_path)
    assert config.secrets_dir == tmp_path / "secrets"
    assert config.help_dir not in config.secrets_dir.parents and config.secrets_dir != config.help_dir
    ServerSecrets.from_config(config).key(HOLDOUT)
    assert (tmp_path / "secrets" / KEY_FILE).is_file()
    assert not config.help_dir.exists()   # nothing written beside the help data


def test_a_short_given_key_is_refused_at_start():
    with pytest.raises(ConfigError, match="SWAGDIGITS_SECRET_KEY"):
        Config.from_env({"SWAGDIGITS_SECRET_KEY": "short"})
    assert Config.from_env({"SWAGDIGITS_SECRET_KEY": "k" * 32}).secret_key == "k" * 32
