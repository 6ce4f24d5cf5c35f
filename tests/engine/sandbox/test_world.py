"""Specification of the world spec: what a declaration means before anything listens."""

from __future__ import annotations

import pytest

from engine.sandbox.world import (
    NULL_MX,
    POSTFIX_PENALTY,
    Behaviour,
    DnsFault,
    Domain,
    MailServer,
    Mx,
    World,
    holds,
)


def test_mail_servers_take_consecutive_loopback_addresses_from_127_0_0_2():
    world = World(servers=[MailServer("mx1.test"), MailServer("mx2.test"), MailServer("mx3.test")])

    assert [world.address_of(f"mx{i}.test") for i in (1, 2, 3)] == [
        "127.0.0.2",
        "127.0.0.3",
        "127.0.0.4",
    ]
    assert world.zone["mx2.test"].a == ("127.0.0.3",)


def test_a_pinned_address_is_kept_and_skipped_by_the_others():
    world = World(servers=[MailServer("mx1.test"), MailServer("pinned.test", address="127.0.0.3")])

    assert world.address_of("mx1.test") == "127.0.0.2"
    assert world.address_of("pinned.test") == "127.0.0.3"
    assert (
        World(
            servers=[MailServer("pinned.test", address="127.0.0.2"), MailServer("mx1.test")]
        ).address_of("mx1.test")
        == "127.0.0.3"
    )


def test_servers_listen_on_loopback_only():
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        MailServer("mx.test", address="192.0.2.1")


def test_a_server_named_like_a_domain_is_its_implicit_mx():
    world = World(servers=[MailServer("implicit.test")], domains=[Domain("implicit.test", spf="x")])

    entry = world.zone["implicit.test"]
    assert (entry.mx, entry.a, entry.spf) == ((), ("127.0.0.2",), "x")


def test_dmarc_is_served_under_the_dmarc_label():
    world = World(domains=[Domain("Example.TEST.", dmarc="v=DMARC1; p=none")])

    assert world.zone["_dmarc.example.test"].txt == ("v=DMARC1; p=none",)


def test_mx_host_names_get_preferences_in_order_unless_given():
    domain = Domain("d.test", mx=["MX1.d.test.", Mx("mx0.d.test", 5), "mx2.d.test"])

    assert domain.mx == (Mx("mx1.d.test", 10), Mx("mx0.d.test", 5), Mx("mx2.d.test", 30))
    assert Domain("none.test", mx=NULL_MX).mx == (Mx(".", 0),)


@pytest.mark.parametrize(
    ("world", "message"),
    [
        (lambda: World(servers=[MailServer("a.test"), MailServer("A.test")]), "declared twice"),
        (lambda: World(domains=[Domain("a.test"), Domain("a.test.")]), "declared twice"),
        (
            lambda: World(domains=[Domain("a.test", dmarc="x"), Domain("_dmarc.a.test")]),
            "declared twice",
        ),
        (
            lambda: World(
                servers=[MailServer("a.test")], domains=[Domain("a.test", a=["192.0.2.1"])]
            ),
            "address",
        ),
        (lambda: Domain("a.test", cname="b.test", spf="x"), "CNAME"),
        (lambda: Domain("a.test", a=["not-an-ip"]), "octets"),
    ],
)
def test_contradictory_worlds_are_refused_when_declared(world, message):
    with pytest.raises(ValueError, match=message):
        world()


def test_mailbox_entries_match_a_local_part_anywhere_or_one_full_address():
    server = MailServer("mx.test", mailboxes={"Alice", "bob@One.test"})

    assert holds(server.mailboxes, "ALICE@any.test")
    assert holds(server.mailboxes, "Bob@one.TEST")
    assert not holds(server.mailboxes, "bob@two.test")


def test_the_default_penalty_is_postfixs():
    assert (POSTFIX_PENALTY.soft_limit, POSTFIX_PENALTY.hard_limit) == (10, 20)
    assert POSTFIX_PENALTY.sleep_s == 1.0
    assert MailServer("mx.test").penalty == POSTFIX_PENALTY


def test_only_refused_servers_do_not_listen():
    assert [b for b in Behaviour if not MailServer("mx.test", behaviour=b).listens] == [
        Behaviour.REFUSED
    ]


def test_a_fault_is_part_of_the_name_it_breaks():
    world = World(domains=[Domain("broken.test", mx=["mx.test"], fault=DnsFault.SERVFAIL)])

    assert world.zone["broken.test"].fault is DnsFault.SERVFAIL
