"""The storage the conformance suite runs against: the embedded server nx-27017 started
here on a free port, or the real MongoDB at MONGODB_URI (a throwaway database, dropped
afterwards)."""
from __future__ import annotations

import os
from pathlib import Path

import mongoengine
import pytest
from pymongo import MongoClient

from siyu_kit.devstack import Stack
from siyu_kit.ids import new_id

ALIAS = "conformance"


@pytest.fixture(scope="session")
def storage_uri(tmp_path_factory):
    if os.environ.get("MONGODB_URI"):
        yield os.environ["MONGODB_URI"]
        return
    stack = Stack.on_free_ports(Path(tmp_path_factory.mktemp("conformance")))
    try:
        stack.start_infra()
    except Exception:
        stack.stop_all()
        raise
    yield stack.mongodb_uri
    stack.stop_all()


@pytest.fixture(scope="session")
def db(storage_uri):
    """A database of this run alone, connected as the services connect (siyu_kit.db)."""
    name = f"siyu_conformance_{new_id('r').lower()}"
    client = MongoClient(storage_uri, uuidRepresentation="standard", tz_aware=True, serverSelectionTimeoutMS=5000)
    mongoengine.connect(db=name, host=storage_uri, alias=ALIAS, uuidRepresentation="standard", tz_aware=True,
                        serverSelectionTimeoutMS=5000)
    yield client[name]
    mongoengine.disconnect(alias=ALIAS)
    client.drop_database(name)
    client.close()


@pytest.fixture
def coll(db, request):
    """A fresh collection for one test."""
    collection = db[f"c_{request.node.name[:40]}_{new_id('c').lower()[-10:]}"]
    yield collection
    collection.drop()
