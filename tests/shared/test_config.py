import re
from pathlib import Path

import pytest

from shared.config import SETTINGS, Config, ConfigError


def test_defaults_need_no_environment():
    config = Config.from_env({})
    assert config.port == 5000
    assert config.redis_url == "redis://127.0.0.1:6379/0"
    assert config.model_dir == Path("models")
    assert config.help_dir == Path("help_data")


def test_data_dir_moves_model_and_help_folders_unless_they_are_set():
    config = Config.from_env({"SWAGDIGITS_DATA_DIR": "/srv/digits", "SWAGDIGITS_HELP_DIR": "/mnt/help"})
    assert config.model_dir == Path("/srv/digits/models")
    assert config.help_dir == Path("/mnt/help")


def test_values_are_converted_to_their_types():
    config = Config.from_env({"SWAGDIGITS_PORT": "8080", "SWAGDIGITS_PREDICT_TIMEOUT": "2.5"})
    assert config.port == 8080 and config.predict_timeout == 2.5


@pytest.mark.parametrize("env", [{"SWAGDIGITS_PORT": "eighty"}, {"SWAGDIGITS_QUEUE_LIMIT": "0"},
                                 {"SWAGDIGITS_PREDICT_TIMEOUT": "-1"}])
def test_bad_values_fail_at_start_naming_the_variable(env):
    with pytest.raises(ConfigError, match=next(iter(env))):
        Config.from_env(env)


def test_as_env_round_trips_to_the_same_config():
    config = Config.from_env({"SWAGDIGITS_PORT": "6001", "REDIS_URL": "redis://example:1/2"})
    assert Config.from_env(config.as_env()) == config


def test_every_setting_is_a_config_field():
    assert set(SETTINGS) == set(Config.__dataclass_fields__)


def test_a_data_dir_override_moves_the_folders_that_were_not_given():
    config = Config.from_env({}, data_dir=Path("/tmp/x"), help_dir=Path("/tmp/h"))
    assert config.model_dir == Path("/tmp/x/models") and config.help_dir == Path("/tmp/h")


def test_the_readme_documents_every_setting():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert [s.env for s in SETTINGS.values() if f"`{s.env}`" not in readme] == []


def test_the_readme_table_gives_every_setting_its_current_default():
    """Each setting has a row in README's Configuration table showing the default the code uses."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| ([^|]*) \|", readme, re.M))
    placeholders = {"`(see text)`", "`(unset)`", "(empty)"}
    missing = [s.env for s in SETTINGS.values() if s.env not in rows]
    stale = [(s.env, rows[s.env], s.default) for s in SETTINGS.values()
             if s.env in rows and rows[s.env].strip() not in placeholders | {f"`{s.default}`"}]
    assert (missing, stale) == ([], [])


def test_default_image_limits_stay_near_the_drawing_canvas():
    """A drawing is 280x280; the default admits 3x that (a high-density screen) with room
    to spare, and nothing like the 4096x4096 images that cost a worker half a second."""
    config = Config.from_env({})
    assert 840 * 840 <= config.max_image_pixels <= 1024 * 1024
    assert 1024 <= config.max_image_side <= 2048
