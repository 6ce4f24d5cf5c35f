"""Specification of probe planning: grouping by MX route, and what policy answers unprobed."""

from __future__ import annotations

import polars as pl
import pytest

from engine.probe_plan import PLAN_SCHEMA, Route, plan_probes
from engine.smtp_reply import RcptClass


def mx(host: str, preference: int, *addresses: str, routable: bool = True) -> dict:
    return {
        "preference": preference,
        "host": host,
        "addresses": list(addresses),
        "routable": routable,
    }


def plan(*rows: tuple[str, list[dict]], **flags: bool) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "email_normalized": email,
                "domain": email.rpartition("@")[2],
                "mx_hosts": hosts,
                "smtp_provider": None,
                "accepts_all_at_rcpt": flags.get("accepts_all_at_rcpt", False),
                "blocks_verification": flags.get("blocks_verification", False),
                "dislikes_multi_rcpt": flags.get("dislikes_multi_rcpt", False),
            }
            for email, hosts in rows
        ],
        schema=PLAN_SCHEMA,
    )


GIANT = [mx("mx.giant.test", 10, "192.0.2.1")]
SMALL = [mx("mx.small.test", 10, "192.0.2.2")]


def test_domains_sharing_an_mx_route_share_a_group_and_the_biggest_group_comes_first():
    planned = plan_probes(
        plan(
            ("a@small.test", SMALL),
            ("b@one.test", GIANT),
            ("c@two.test", GIANT),
        )
    )

    assert [len(group.addresses) for group in planned.groups] == [2, 1]
    assert planned.groups[0].primary_host == "mx.giant.test"
    assert planned.groups[0].addresses == [("b@one.test", "one.test"), ("c@two.test", "two.test")]


def test_routes_follow_mx_preference_then_each_hosts_addresses_and_skip_unroutable_hosts():
    hosts = [
        mx("mx2.a.test", 20, "192.0.2.20"),
        mx("mx0.a.test", 5, "10.0.0.1", routable=False),
        mx("mx1.a.test", 10, "192.0.2.10", "192.0.2.11"),
    ]

    (group,) = plan_probes(plan(("x@a.test", hosts))).groups

    assert group.routes == (
        Route("mx1.a.test", "192.0.2.10"),
        Route("mx1.a.test", "192.0.2.11"),
        Route("mx2.a.test", "192.0.2.20"),
    )


@pytest.mark.parametrize(
    ("flags", "expected", "catch_all"),
    [
        ({"blocks_verification": True}, RcptClass.PROVIDER_BLOCKS_VERIFICATION, None),
        ({"accepts_all_at_rcpt": True}, RcptClass.ACCEPTED, True),
        (
            {"blocks_verification": True, "accepts_all_at_rcpt": True},
            RcptClass.PROVIDER_BLOCKS_VERIFICATION,
            None,
        ),
    ],
)
def test_provider_policy_answers_without_a_probe(flags, expected, catch_all):
    planned = plan_probes(plan(("x@a.test", GIANT), **flags))

    assert planned.groups == []
    (decision,) = planned.decisions
    assert (decision.rcpt_class, decision.domain_catch_all) == (expected, catch_all)
    assert decision.mx_host == "mx.giant.test"
    assert decision.message.startswith("not probed:")


def test_domains_without_a_routable_mx_and_unwritable_addresses_are_not_probed():
    planned = plan_probes(
        plan(
            ("x@nomx.test", []),
            ("y@private.test", [mx("mx.private.test", 10, "10.0.0.1", routable=False)]),
            ("bad>\r\nDATA@a.test", GIANT),
        )
    )

    assert planned.groups == []
    assert [d.rcpt_class for d in planned.decisions] == [RcptClass.NOT_PROBED] * 3


def test_a_domain_that_dislikes_several_rcpts_gets_its_own_group():
    planned = plan_probes(plan(("x@a.test", GIANT), ("y@b.test", GIANT), dislikes_multi_rcpt=True))

    assert planned.groups[0].one_rcpt_per_session


def test_addresses_listed_twice_or_already_checkpointed_are_planned_once_or_not_at_all():
    planned = plan_probes(
        plan(("x@a.test", GIANT), ("x@a.test", GIANT), ("done@a.test", GIANT)), skip={"done@a.test"}
    )

    assert planned.groups[0].addresses == [("x@a.test", "a.test")]


def test_a_plan_without_the_columns_is_refused_with_their_names():
    with pytest.raises(ValueError, match="mx_hosts"):
        plan_probes(pl.DataFrame({"email_normalized": ["x@a.test"], "domain": ["a.test"]}))
