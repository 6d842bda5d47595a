from __future__ import annotations

from collections.abc import Iterator

import pytest
from pipeline_cluster import Cluster, running_cluster


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("pipeline")) as started:
        yield started
