"""Specification of the sandbox mail servers: each behaviour answers as its world declares."""

from __future__ import annotations

import asyncio
import socket
import statistics
import time

import aiosmtplib
import pytest

from engine.sandbox.smtp_replies import HUGE_LINE_OCTETS
from engine.sandbox.world import (
    Behaviour,
    ErrorPenalty,
    Greylist,
    MailServer,
    RateLimit,
    World,
)

MX = "mx.sandbox.test"


def one_server(**spec: object) -> World:
    return World(servers=[MailServer(MX, **spec)])  # type: ignore[arg-type]


def open_transaction(dialogue, sender: str = "probe@prober.test") -> None:
    dialogue.greet()
    assert dialogue.command(f"MAIL FROM:<{sender}>")[0] == 250


# --- Answering behaviours ---


def test_strict_server_accepts_its_mailboxes_and_rejects_unknown_users_with_5_1_1(
    start_world, smtp_to
):
    running = start_world(one_server(mailboxes={"alice", "Bob@Strict.test"}))
    dialogue = smtp_to(running, MX)
    open_transaction(dialogue)

    assert dialogue.command("RCPT TO:<alice@strict.test>") == (250, "2.1.5 Ok")
    assert dialogue.command("RCPT TO:<ALICE@other.test>")[0] == 250  # a local part: any domain
    assert dialogue.command("RCPT TO:<bob@STRICT.test>")[0] == 250  # case-insensitive
    code, text = dialogue.command("RCPT TO:<bob@other.test>")  # a full address: that domain only
    assert (code, text.split()[0]) == (550, "5.1.1")
    assert "User unknown" in text


def test_catch_all_server_accepts_every_recipient(start_world, smtp_to):
    dialogue = smtp_to(start_world(one_server(behaviour=Behaviour.CATCH_ALL)), MX)
    open_transaction(dialogue)

    for rcpt in ("anyone@catchall.test", "x7q2k9z@catchall.test"):
        assert dialogue.command(f"RCPT TO:<{rcpt}>") == (250, "2.1.5 Ok")


def test_greylisting_defers_a_triplet_until_its_delay_has_passed(start_world, smtp_to):
    running = start_world(one_server(mailboxes={"alice"}, greylist=Greylist(delay_s=0.4)))
    first = smtp_to(running, MX)
    open_transaction(first)
    code, text = first.command("RCPT TO:<alice@grey.test>")
    assert (code, text.split()[0]) == (450, "4.7.1")
    assert "Greylisted" in text
    # Unknown users are greylisted too, and learn their fate on the retry (RFC 6647).
    assert first.command("RCPT TO:<nobody@grey.test>")[0] == 450

    time.sleep(0.45)
    retry = smtp_to(running, MX)
    open_transaction(retry)
    assert retry.command("RCPT TO:<alice@grey.test>")[0] == 250
    assert retry.command("RCPT TO:<nobody@grey.test>")[0] == 550
    # Another sender makes another triplet, which starts its own wait.
    other_sender = smtp_to(running, MX)
    open_transaction(other_sender, sender="other@prober.test")
    assert other_sender.command("RCPT TO:<alice@grey.test>")[0] == 450


def test_greylisting_can_answer_451(start_world, smtp_to):
    dialogue = smtp_to(start_world(one_server(greylist=Greylist(delay_s=60, code=451))), MX)
    open_transaction(dialogue)

    assert dialogue.command("RCPT TO:<alice@grey.test>")[0] == 451


def test_full_mailboxes_answer_452_4_2_2_when_temporary_and_552_5_2_2_when_permanent(
    start_world, smtp_to
):
    running = start_world(
        one_server(full_temporary={"busy@full.test"}, full_permanent={"stuffed@full.test"})
    )
    dialogue = smtp_to(running, MX)
    open_transaction(dialogue)

    assert dialogue.command("RCPT TO:<busy@full.test>")[1].startswith("4.2.2")
    assert dialogue.command("RCPT TO:<busy@full.test>")[0] == 452
    assert dialogue.command("RCPT TO:<stuffed@full.test>")[0] == 552
    assert dialogue.command("RCPT TO:<stuffed@full.test>")[1].startswith("5.2.2")


def test_disabled_mailbox_answers_550_5_2_1(start_world, smtp_to):
    dialogue = smtp_to(start_world(one_server(disabled={"gone"})), MX)
    open_transaction(dialogue)

    code, text = dialogue.command("RCPT TO:<gone@disabled.test>")
    assert (code, text.split()[0]) == (550, "5.2.1")


def test_policy_block_refuses_every_recipient_with_5_7_1(start_world, smtp_to):
    running = start_world(one_server(behaviour=Behaviour.POLICY_BLOCK, mailboxes={"alice"}))
    dialogue = smtp_to(running, MX)
    open_transaction(dialogue)

    for rcpt in ("alice@policy.test", "nobody@policy.test"):
        code, text = dialogue.command(f"RCPT TO:<{rcpt}>")
        assert (code, text.split()[0]) == (550, "5.7.1")
        assert "verification refused" in text


def test_ip_blamed_at_banner_names_the_client_and_the_blocklist_then_waits_for_quit(
    start_world, smtp_to
):
    dialogue = smtp_to(start_world(one_server(behaviour=Behaviour.BLAME_IP_AT_BANNER)), MX)

    code, lines = dialogue.read_reply()
    assert code == 554
    assert (
        "5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org"
        in (lines[0])
    )
    assert dialogue.command("EHLO prober.test")[0] == 503  # RFC 5321 §3.1
    assert dialogue.command("QUIT")[0] == 221


def test_ip_blamed_at_rcpt_answers_every_recipient_with_the_blocklist_reply(start_world, smtp_to):
    running = start_world(one_server(behaviour=Behaviour.BLAME_IP_AT_RCPT, mailboxes={"alice"}))
    dialogue = smtp_to(running, MX)
    open_transaction(dialogue)

    code, text = dialogue.command("RCPT TO:<alice@blamed.test>")
    assert (code, text.split()[0]) == (554, "5.7.1")
    assert "[127.0.0.1] blocked using zen.spamhaus.org" in text


def test_busy_server_answers_421_at_the_banner_and_hangs_up(start_world, smtp_to):
    dialogue = smtp_to(start_world(one_server(behaviour=Behaviour.BUSY)), MX)

    code, lines = dialogue.read_reply()
    assert (code, lines[0].split()[0]) == (421, "4.3.2")
    assert dialogue.is_closed_by_server()


def test_rate_limit_refuses_sessions_beyond_the_window_with_421_4_7_0(start_world, smtp_to):
    running = start_world(one_server(rate_limit=RateLimit(sessions=2, window_s=60)))

    for _ in range(2):
        assert smtp_to(running, MX).read_reply()[0] == 220
    refused = smtp_to(running, MX)
    code, lines = refused.read_reply()
    assert (code, lines[0].split()[0]) == (421, "4.7.0")
    assert "too many connections from [127.0.0.1]" in lines[0]
    assert refused.is_closed_by_server()


def test_rate_limit_defers_recipients_beyond_the_window_with_450_4_7_1(start_world, smtp_to):
    running = start_world(one_server(mailboxes={"alice"}, rate_limit=RateLimit(rcpts=3)))
    dialogue = smtp_to(running, MX)
    open_transaction(dialogue)

    codes = [dialogue.command("RCPT TO:<alice@limited.test>")[0] for _ in range(5)]
    assert codes == [250, 250, 250, 450, 450]
    assert dialogue.command("RCPT TO:<alice@limited.test>")[1].startswith("4.7.1 Error: too many")


def test_rate_limit_can_hang_up_with_421_on_recipients(start_world, smtp_to):
    limit = RateLimit(rcpts=1, rcpt_code=421)
    dialogue = smtp_to(start_world(one_server(mailboxes={"alice"}, rate_limit=limit)), MX)
    open_transaction(dialogue)

    assert dialogue.command("RCPT TO:<alice@limited.test>")[0] == 250
    assert dialogue.command("RCPT TO:<alice@limited.test>")[0] == 421
    assert dialogue.is_closed_by_server()


def test_rate_limit_refuses_more_concurrent_sessions_than_allowed(start_world, smtp_to):
    running = start_world(one_server(rate_limit=RateLimit(concurrent=1)))

    assert smtp_to(running, MX).read_reply()[0] == 220
    assert smtp_to(running, MX).read_reply()[0] == 421


def test_max_rcpt_answers_452_4_5_3_beyond_the_limit_until_a_new_transaction(start_world, smtp_to):
    dialogue = smtp_to(start_world(one_server(behaviour=Behaviour.CATCH_ALL, max_rcpt=2)), MX)
    open_transaction(dialogue)

    codes = [dialogue.command(f"RCPT TO:<u{i}@few.test>")[0] for i in range(3)]
    assert codes == [250, 250, 452]
    assert dialogue.command("RCPT TO:<u9@few.test>")[1].startswith("4.5.3")
    assert dialogue.command("RSET")[0] == 250
    assert dialogue.command("MAIL FROM:<probe@prober.test>")[0] == 250
    assert dialogue.command("RCPT TO:<u3@few.test>")[0] == 250


def test_error_penalty_slows_every_reply_after_the_soft_limit_and_hangs_up_at_the_hard_limit(
    start_world, smtp_to
):
    penalty = ErrorPenalty(soft_limit=10, hard_limit=20, sleep_s=0.1)
    dialogue = smtp_to(start_world(one_server(penalty=penalty)), MX)
    open_transaction(dialogue)

    def timed_rcpt() -> tuple[int, float]:
        started = time.perf_counter()
        code, _ = dialogue.command("RCPT TO:<nobody@strict.test>")
        return code, time.perf_counter() - started

    early = [timed_rcpt() for _ in range(10)]
    late = [timed_rcpt() for _ in range(10)]
    assert all(code == 550 for code, _ in early + late)
    assert statistics.median(elapsed for _, elapsed in early) < 0.05
    assert min(elapsed for _, elapsed in late) >= 0.09
    # The 20th error was the last: Postfix says 421 before reading another command.
    code, lines = dialogue.read_reply()
    assert code == 421
    assert "too many errors" in lines[0]
    assert dialogue.is_closed_by_server()


def test_postfix_penalty_is_on_by_default(start_world, smtp_to):
    dialogue = smtp_to(start_world(one_server()), MX)
    open_transaction(dialogue)
    dialogue.send("\r\n".join(["RCPT TO:<nobody@strict.test>"] * 10))
    for _ in range(10):
        assert dialogue.read_reply()[0] == 550

    started = time.perf_counter()
    assert dialogue.command("RCPT TO:<nobody@strict.test>")[0] == 550
    assert time.perf_counter() - started >= 0.95


# --- Misbehaving servers ---


def test_tarpit_accepts_the_connection_and_never_answers(start_world, smtp_to, eventually):
    running = start_world(one_server(behaviour=Behaviour.TARPIT))
    dialogue = smtp_to(running, MX)
    dialogue.sock.settimeout(0.3)

    with pytest.raises(TimeoutError):
        dialogue.read_line()
    dialogue.send("EHLO prober.test")
    with pytest.raises(TimeoutError):
        dialogue.read_line()
    assert eventually(lambda: running.counters().servers[MX].sessions == 1)


def test_refused_server_has_its_address_declared_and_nothing_listening(start_world):
    running = start_world(one_server(behaviour=Behaviour.REFUSED))

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((running.address_of(MX), running.smtp_port), timeout=2)


def test_reset_after_mail_answers_mail_from_with_a_tcp_reset(start_world, smtp_to):
    dialogue = smtp_to(start_world(one_server(behaviour=Behaviour.RESET_AFTER_MAIL)), MX)
    dialogue.greet()

    dialogue.send("MAIL FROM:<probe@prober.test>")
    with pytest.raises(ConnectionResetError):
        dialogue.read_reply()


def test_reset_after_rcpt_resets_at_the_nth_recipient(start_world, smtp_to):
    spec = {"behaviour": Behaviour.RESET_AFTER_RCPT, "reset_after_rcpts": 3, "mailboxes": {"a"}}
    dialogue = smtp_to(start_world(one_server(**spec)), MX)
    open_transaction(dialogue)

    assert dialogue.command("RCPT TO:<a@reset.test>")[0] == 250
    assert dialogue.command("RCPT TO:<b@reset.test>")[0] == 550
    dialogue.send("RCPT TO:<c@reset.test>")
    with pytest.raises(ConnectionResetError):
        dialogue.read_reply()


def test_http_banner_is_a_web_page_not_smtp(start_world, smtp_to):
    dialogue = smtp_to(start_world(one_server(behaviour=Behaviour.HTTP_BANNER)), MX)

    assert dialogue.read_line() == b"HTTP/1.1 400 Bad Request"


def test_binary_garbage_follows_a_valid_banner(start_world, smtp_to):
    dialogue = smtp_to(start_world(one_server(behaviour=Behaviour.BINARY_GARBAGE)), MX)
    assert dialogue.read_reply()[0] == 220

    dialogue.send("EHLO prober.test")
    garbage = dialogue.read_line()
    assert garbage.startswith(b"\x00\xff")
    with pytest.raises(UnicodeDecodeError):
        garbage.decode()


def test_endless_multiline_reply_never_ends(start_world, smtp_to):
    dialogue = smtp_to(start_world(one_server(behaviour=Behaviour.ENDLESS_MULTILINE)), MX)
    assert dialogue.read_reply()[0] == 220
    dialogue.send("EHLO prober.test")

    lines = [dialogue.read_line() for _ in range(50_000)]  # ~3 MB, and still going
    assert all(line.startswith(b"250-") for line in lines)


def test_huge_line_banner_is_ten_megabytes_long(start_world, smtp_to):
    dialogue = smtp_to(start_world(one_server(behaviour=Behaviour.HUGE_LINE)), MX)

    line = dialogue.read_line()
    assert line.startswith(b"220 ")
    assert len(line) == 4 + HUGE_LINE_OCTETS


def test_trickle_drips_a_greeting_that_never_ends_one_octet_at_a_time(start_world, smtp_to):
    dialogue = smtp_to(start_world(one_server(behaviour=Behaviour.TRICKLE)), MX)
    dialogue.sock.settimeout(1.0)

    started = time.monotonic()
    octets = [dialogue.sock.recv(1024) for _ in range(8)]
    elapsed = time.monotonic() - started

    assert b"".join(octets) == b"220-mx.s"  # a continuation line: the reply goes on
    assert all(len(octet) == 1 for octet in octets)
    assert elapsed >= 0.2  # one octet every 50 ms


def test_accept_then_close_closes_before_the_banner(start_world, smtp_to):
    dialogue = smtp_to(start_world(one_server(behaviour=Behaviour.ACCEPT_THEN_CLOSE)), MX)

    assert dialogue.is_closed_by_server()


# --- Protocol details ---


def test_latency_delays_every_reply_by_about_the_declared_time(start_world, smtp_to):
    dialogue = smtp_to(start_world(one_server(latency_s=0.05, mailboxes={"alice"})), MX)
    started = time.perf_counter()
    assert dialogue.read_reply()[0] == 220
    banner_s = time.perf_counter() - started

    timings = []
    for line in ("EHLO prober.test", "MAIL FROM:<p@prober.test>", "RCPT TO:<alice@slow.test>"):
        started = time.perf_counter()
        dialogue.command(line)
        timings.append(time.perf_counter() - started)
    for elapsed in [banner_s, *timings]:
        assert 0.045 <= elapsed < 0.25  # never early; the upper bound only catches a stall


def test_pipelined_replies_share_one_round_trip(start_world, smtp_to):
    """Latency models the network path: 21 pipelined replies arrive after one delay, not 21."""
    dialogue = smtp_to(start_world(one_server(latency_s=0.1, behaviour=Behaviour.CATCH_ALL)), MX)
    dialogue.greet()

    started = time.perf_counter()
    batch = ["MAIL FROM:<p@prober.test>"] + [f"RCPT TO:<u{i}@fast.test>" for i in range(20)]
    dialogue.send("\r\n".join(batch))
    codes = [dialogue.read_reply()[0] for _ in batch]
    elapsed = time.perf_counter() - started

    assert codes == [250] * 21
    assert 0.095 <= elapsed < 1.0  # serialised would be 2.1 s


def test_a_reply_produced_later_waits_its_own_latency(start_world, smtp_to):
    dialogue = smtp_to(start_world(one_server(latency_s=0.1, behaviour=Behaviour.CATCH_ALL)), MX)
    dialogue.greet()

    started = time.perf_counter()
    dialogue.send("MAIL FROM:<p@prober.test>")
    time.sleep(0.05)
    dialogue.send("RCPT TO:<u@late.test>")  # pipelined, but produced 50 ms after the MAIL reply
    assert dialogue.read_reply()[0] == 250
    mail_s = time.perf_counter() - started
    assert dialogue.read_reply()[0] == 250
    rcpt_s = time.perf_counter() - started

    assert mail_s >= 0.095
    assert rcpt_s >= 0.145  # 50 ms later than the MAIL reply, not on its timer


def test_pipelining_and_smtputf8_are_advertised_only_when_declared(start_world, smtp_to):
    running = start_world(
        World(
            servers=[
                MailServer("mx.modern.test"),
                MailServer("mx.old.test", pipelining=False, smtputf8=False),
            ]
        )
    )
    modern, old = smtp_to(running, "mx.modern.test"), smtp_to(running, "mx.old.test")
    for dialogue in (modern, old):
        assert dialogue.read_reply()[0] == 220
        dialogue.send("EHLO prober.test")

    modern_code, modern_lines = modern.read_reply()
    old_code, old_lines = old.read_reply()
    assert modern_code == old_code == 250
    assert {"PIPELINING", "SMTPUTF8", "ENHANCEDSTATUSCODES"} <= set(modern_lines)
    assert "PIPELINING" not in old_lines
    assert "SMTPUTF8" not in old_lines


def test_commands_sent_ahead_to_a_server_without_pipelining_are_counted(
    start_world, smtp_to, eventually
):
    running = start_world(one_server(pipelining=False, behaviour=Behaviour.CATCH_ALL))
    dialogue = smtp_to(running, MX)
    open_transaction(dialogue)
    assert dialogue.command("RCPT TO:<one@old.test>")[0] == 250  # waited for: proper
    assert running.counters().servers[MX].improper_pipelining == 0

    dialogue.send("RCPT TO:<two@old.test>\r\nRCPT TO:<three@old.test>")
    assert [dialogue.read_reply()[0] for _ in range(2)] == [250, 250]
    assert eventually(lambda: running.counters().servers[MX].improper_pipelining == 1)


def test_smtputf8_is_refused_when_not_offered_and_required_for_utf8_addresses(start_world, smtp_to):
    running = start_world(
        World(servers=[MailServer("mx.utf8.test"), MailServer("mx.ascii.test", smtputf8=False)])
    )
    utf8 = smtp_to(running, "mx.utf8.test")
    open_transaction(utf8)
    code, text = utf8.command("RCPT TO:<jörg@utf8.test>")
    assert (code, text.split()[0]) == (553, "5.6.7")  # RFC 6531: MAIL lacked SMTPUTF8

    ascii_only = smtp_to(running, "mx.ascii.test")
    ascii_only.greet()
    assert ascii_only.command("MAIL FROM:<p@prober.test> SMTPUTF8")[0] == 555


def test_multiline_server_splits_its_banner_and_its_rejections(start_world, smtp_to):
    dialogue = smtp_to(start_world(one_server(multiline=True)), MX)

    code, banner = dialogue.read_reply()
    assert code == 220
    assert len(banner) == 3
    assert dialogue.command("EHLO prober.test")[0] == 250
    assert dialogue.command("MAIL FROM:<p@prober.test>")[0] == 250
    dialogue.send("RCPT TO:<nobody.with.a.long.name@multiline.test>")
    code, lines = dialogue.read_reply()
    assert code == 550
    assert len(lines) > 1
    assert all(line.startswith("5.1.1 ") for line in lines)  # Gmail style: codes on every line


def test_commands_out_of_order_get_503(start_world, smtp_to):
    dialogue = smtp_to(start_world(one_server()), MX)
    assert dialogue.read_reply()[0] == 220

    assert dialogue.command("MAIL FROM:<p@prober.test>")[0] == 503
    assert dialogue.command("EHLO prober.test")[0] == 250
    assert dialogue.command("RCPT TO:<a@strict.test>")[0] == 503
    assert dialogue.command("FROB")[0] == 502


def test_data_and_bdat_are_refused_with_554_and_counted(start_world, smtp_to, eventually):
    running = start_world(one_server(behaviour=Behaviour.CATCH_ALL))
    dialogue = smtp_to(running, MX)
    open_transaction(dialogue)
    assert dialogue.command("RCPT TO:<a@data.test>")[0] == 250

    code, text = dialogue.command("DATA")
    assert (code, text.split()[0]) == (554, "5.7.1")  # no 354: not a byte of mail is taken
    assert dialogue.command("BDAT 10 LAST")[0] == 554
    assert eventually(lambda: running.counters().smtp.data_commands == 2)
    assert running.counters().servers[MX].data_commands == 2


def test_counters_count_sessions_verbs_and_recipients_per_server_and_for_the_world(
    start_world, smtp_to, eventually
):
    running = start_world(
        World(servers=[MailServer("mx.a.test", mailboxes={"x"}), MailServer("mx.b.test")])
    )
    for server in ("mx.a.test", "mx.a.test", "mx.b.test"):
        dialogue = smtp_to(running, server)
        open_transaction(dialogue)
        dialogue.command("RCPT TO:<x@a.test>")
        dialogue.command("RSET")
        dialogue.command("QUIT")

    def settled() -> bool:
        return running.counters().smtp.active_sessions == 0

    assert eventually(settled)
    counts = running.counters()
    assert counts.servers["mx.a.test"].sessions == 2
    assert counts.servers["mx.b.test"].sessions == 1
    assert counts.smtp.sessions == 3
    assert counts.smtp.commands == {"EHLO": 3, "MAIL": 3, "RCPT": 3, "RSET": 3, "QUIT": 3}
    assert counts.servers["mx.a.test"].rcpts_to("X@A.test") == 2
    assert counts.smtp.rcpt_total == 3
    assert counts.smtp.data_commands == 0


def test_max_concurrent_sessions_is_the_peak_per_server_and_for_the_world(
    start_world, smtp_to, eventually
):
    running = start_world(World(servers=[MailServer("mx.a.test"), MailServer("mx.b.test")]))
    held = [smtp_to(running, "mx.a.test") for _ in range(3)] + [smtp_to(running, "mx.b.test")]
    for dialogue in held:
        assert dialogue.read_reply()[0] == 220
    for dialogue in held:
        dialogue.close()

    assert eventually(lambda: running.counters().smtp.active_sessions == 0)
    counts = running.counters()
    assert counts.servers["mx.a.test"].max_concurrent_sessions == 3
    assert counts.servers["mx.b.test"].max_concurrent_sessions == 1
    assert counts.smtp.max_concurrent_sessions == 4


def test_an_aiosmtplib_client_can_probe_without_sending_mail(start_world):
    running = start_world(one_server(mailboxes={"alice"}))

    async def probe() -> list[int]:
        client = aiosmtplib.SMTP(
            hostname=running.address_of(MX), port=running.smtp_port, timeout=5, start_tls=False
        )
        await client.connect()
        await client.ehlo(hostname="prober.test")
        await client.mail("probe@prober.test")
        codes = []
        for rcpt in ("alice@strict.test", "nobody@strict.test"):
            try:
                codes.append((await client.rcpt(rcpt)).code)
            except aiosmtplib.SMTPRecipientRefused as refused:
                codes.append(refused.code)
        await client.quit()
        return codes

    assert asyncio.run(probe()) == [250, 550]
    assert running.counters().smtp.data_commands == 0
