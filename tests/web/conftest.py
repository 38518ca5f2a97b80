"""Web unit tests: the Flask test client over fakeredis, no worker, no server."""
import fakeredis
import pytest

from shared.config import Config
from web import create_app
from web.services import Services


@pytest.fixture
def fake_conn():
    return fakeredis.FakeRedis()


@pytest.fixture
def web_config(tmp_path):
    return Config.from_env({}, data_dir=tmp_path, model_dir=tmp_path / "models",
                           help_dir=tmp_path / "help_data", predict_timeout=0.2, queue_limit=3,
                           max_upload_bytes=200_000, max_image_pixels=1_000_000, max_image_side=2000,
                           batch_max_images=20, batch_max_bytes=2_000_000, batch_chunk_size=4)


@pytest.fixture
def app(web_config, fake_conn):
    app = create_app(web_config, services=Services.connect(web_config, conn=fake_conn))
    app.testing = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()
