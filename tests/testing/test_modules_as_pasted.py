"""Every module of the chapter, pasted into an empty directory and run with pytest, as a reader would.

One pytest run for all the stdlib modules and one for the engine-backed ones (each start
of an interpreter with pytest and Hypothesis costs a second or two).
"""

from __future__ import annotations

from tests.testing.support import pytest_as_reader

STDLIB = {
    "unit_testing_given_when_then.py": 7,
    "unit_testing_in_memory_bus.py": 4,
    "unit_testing_fakes_vs_mocks.py": 6,
    "integration_testing_contracts.py": 3,
    "end_to_end_testing_coaching_flow.py": 1,
    "performance_testing_load_generator.py": 3,
    "performance_testing_query_budget.py": 3,
    "property_based_testing_consumer.py": 1,
    "property_based_testing_event_store.py": 1,
}


def test_every_stdlib_module_passes_its_own_tests_under_pytest():
    outcomes = pytest_as_reader(*STDLIB, args=("--benchmark-disable",))
    assert outcomes == {module: {"passed": n} for module, n in STDLIB.items()}


def test_the_engine_modules_pass_their_own_tests_under_pytest_against_real_engines(
        redis_server, postgres_db, rabbitmq_server, nats_server, kafka_server):
    env = {"REDIS_URL": redis_server.url, "DATABASE_URL": postgres_db,
           "AMQP_URL": rabbitmq_server.url, "NATS_URL": nats_server.url,
           "KAFKA_BOOTSTRAP": kafka_server.url}
    outcomes = pytest_as_reader("integration_testing_transports.py", "end_to_end_testing_broker.py",
                                "property_based_testing_broker_restart.py", env=env)
    assert outcomes == {
        "integration_testing_transports.py": {"passed": 6 * 6},  # six tests, six transports
        "end_to_end_testing_broker.py": {"passed": 1},
        "property_based_testing_broker_restart.py": {"passed": 1},
    }
