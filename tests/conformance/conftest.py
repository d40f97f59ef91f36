"""The storage the conformance suite runs against: the embedded server nx-27017 of the
session's `infra` fixture, or the real MongoDB at MONGODB_URI (a throwaway database, dropped
afterwards)."""
from __future__ import annotations

import os

import mongoengine
import pytest
from pymongo import MongoClient

from siyu_kit.ids import new_id

ALIAS = "conformance"


@pytest.fixture(scope="session")
def storage_uri(request):
    if os.environ.get("MONGODB_URI"):
        return os.environ["MONGODB_URI"]
    return request.getfixturevalue("infra").mongodb_uri


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
