"""Every reply the sandbox mail servers send, in one place, worded as real servers word them.

Codes are RFC 5321 §4.2 reply codes; the second number is the RFC 3463 enhanced status code
(RFC 2034 leaves it off the greeting and the HELO/EHLO replies). Texts follow Postfix, whose
wording probers meet most, so the prober's reply parser is tested against realistic phrases.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Final

# Gmail wraps long rejections over several "550-5.1.1 ..." lines; so does `multiline` here.
MULTILINE_WIDTH: Final = 60
HUGE_LINE_OCTETS: Final = 10 * 1024 * 1024  # the HUGE_LINE banner, for the hostile-network suite


@dataclass(frozen=True)
class Reply:
    """One SMTP reply: a three-digit code, an optional enhanced code and a text."""

    code: int
    enhanced: str | None
    text: str

    @property
    def is_error(self) -> bool:
        return self.code >= 400

    def render(self, *, multiline: bool = False) -> bytes:
        """The reply on the wire; multi-line replies repeat the codes on every line (RFC 5321
        §4.2.1: "250-" continues, "250 " ends)."""
        prefix = f"{self.code} {self.enhanced} " if self.enhanced else f"{self.code} "
        if not multiline:
            return f"{prefix}{self.text}\r\n".encode(errors="surrogateescape")
        pieces = textwrap.wrap(self.text, MULTILINE_WIDTH) or [""]
        lines = [f"{self.code}-{prefix[4:]}{piece}" for piece in pieces[:-1]]
        lines.append(f"{prefix}{pieces[-1]}")
        return ("\r\n".join(lines) + "\r\n").encode(errors="surrogateescape")


def greeting(host: str, *, multiline: bool) -> bytes:
    if not multiline:
        return f"220 {host} ESMTP mailsift sandbox\r\n".encode()
    return (
        f"220-{host} ESMTP mailsift sandbox\r\n"
        "220-This server is simulated: it answers verification probes and never takes mail.\r\n"
        f"220 {host} ESMTP\r\n"
    ).encode()


def ehlo(host: str, client_ip: str, *, pipelining: bool, smtputf8: bool) -> bytes:
    """The EHLO reply (RFC 5321 §4.1.1.1) listing the extensions this server offers."""
    extensions = ["SIZE 10240000"]
    if pipelining:
        extensions.append("PIPELINING")  # RFC 2920
    extensions += ["ENHANCEDSTATUSCODES", "8BITMIME"]  # RFC 2034, RFC 6152
    if smtputf8:
        extensions.append("SMTPUTF8")  # RFC 6531
    lines = [f"250-{host} Hello [{client_ip}]"] + [f"250-{ext}" for ext in extensions[:-1]]
    lines.append(f"250 {extensions[-1]}")
    return ("\r\n".join(lines) + "\r\n").encode()


def helo(host: str) -> Reply:
    return Reply(250, None, host)


# --- Greeting-time refusals ---


def busy(host: str) -> Reply:
    # RFC 5321 §3.8: 421 at the greeting closes the channel; 4.3.2 "system not accepting
    # network messages" (RFC 3463).
    return Reply(421, "4.3.2", f"{host} Service not available, closing transmission channel")


def too_many_connections(host: str, client_ip: str) -> Reply:
    return Reply(421, "4.7.0", f"{host} Error: too many connections from [{client_ip}]")


def blocklisted_client(client_ip: str) -> Reply:
    """Postfix's reject_rbl_client wording: it blames our IP, not the mailbox (DESIGN §4)."""
    return Reply(
        554,
        "5.7.1",
        f"Service unavailable; Client host [{client_ip}] blocked using zen.spamhaus.org; "
        f"https://www.spamhaus.org/query/ip/{client_ip}",
    )


# RFC 5321 §3.1: after a 554 greeting the server waits for QUIT and answers anything else 503.
NO_SERVICE: Final = Reply(503, "5.5.1", "Error: no SMTP service here, only QUIT")

# --- Session and transaction replies ---

OK: Final = Reply(250, "2.0.0", "Ok")
SENDER_OK: Final = Reply(250, "2.1.0", "Ok")
RECIPIENT_OK: Final = Reply(250, "2.1.5", "Ok")
CANNOT_VRFY: Final = Reply(252, "2.0.0", "Cannot VRFY user, but will accept message")
BYE: Final = Reply(221, "2.0.0", "Bye")
NEED_HELO: Final = Reply(503, "5.5.1", "Error: send HELO/EHLO first")
NEED_MAIL: Final = Reply(503, "5.5.1", "Error: need MAIL command")
NESTED_MAIL: Final = Reply(503, "5.5.1", "Error: nested MAIL command")
MAIL_SYNTAX: Final = Reply(501, "5.5.4", "Syntax: MAIL FROM:<address>")
RCPT_SYNTAX: Final = Reply(501, "5.5.4", "Syntax: RCPT TO:<address>")
HELO_SYNTAX: Final = Reply(501, "5.5.4", "Syntax: EHLO hostname")
# RFC 6531: SMTPUTF8 on MAIL to a server that did not offer it.
SMTPUTF8_UNSUPPORTED: Final = Reply(555, "5.5.4", "Unsupported option: SMTPUTF8")
UNRECOGNISED: Final = Reply(502, "5.5.2", "Error: command not recognized")
# RFC 5321 §4.5.3.1.4: a command line is at most 512 octets (RFC 6531 lets SMTPUTF8 grow it).
LINE_TOO_LONG: Final = Reply(500, "5.5.2", "Error: line too long")
# The prober must never send mail (DESIGN §7); DATA and BDAT end here, counted.
DATA_REFUSED: Final = Reply(554, "5.7.1", "DATA refused: this sandbox only answers probes")
TOO_MANY_RECIPIENTS: Final = Reply(452, "4.5.3", "Error: too many recipients")


def too_many_errors(host: str) -> Reply:
    return Reply(421, "4.7.0", f"{host} Error: too many errors")


# --- RCPT answers: what the prober's verdict rules read ---


def user_unknown(rcpt: str) -> Reply:
    # 5.1.1 "bad destination mailbox address" (RFC 3463): the one proof a mailbox is missing.
    return Reply(
        550, "5.1.1", f"<{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table"
    )


def mailbox_disabled(rcpt: str) -> Reply:
    return Reply(550, "5.2.1", f"<{rcpt}>: Mailbox disabled, not accepting messages")


def mailbox_full_temporary(rcpt: str) -> Reply:
    return Reply(452, "4.2.2", f"<{rcpt}>: Mailbox full, try again later")


def mailbox_full_permanent(rcpt: str) -> Reply:
    return Reply(552, "5.2.2", f"<{rcpt}>: Mailbox full, quota exceeded")


def verification_refused(rcpt: str) -> Reply:
    return Reply(
        550, "5.7.1", f"<{rcpt}>: Recipient address rejected: verification refused by policy"
    )


def greylisted(rcpt: str, code: int, retry_in_s: float) -> Reply:
    return Reply(
        code,
        "4.7.1",
        f"<{rcpt}>: Recipient address rejected: Greylisted, see RFC 6647; "
        f"try again in {max(1, round(retry_in_s))} seconds",
    )


def too_many_recipients_from(client_ip: str, code: int) -> Reply:
    enhanced = "4.7.0" if code == 421 else "4.7.1"
    return Reply(code, enhanced, f"Error: too many recipients from [{client_ip}]")


def non_ascii_without_smtputf8(rcpt: str) -> Reply:
    # RFC 6531 (enhanced code 5.6.7): a UTF-8 address needs SMTPUTF8 on the MAIL command.
    return Reply(553, "5.6.7", f"<{rcpt}>: Non-ASCII address needs SMTPUTF8")


# --- Not SMTP at all ---

HTTP_PAGE: Final = (
    b"HTTP/1.1 400 Bad Request\r\n"
    b"Server: nginx\r\n"
    b"Content-Type: text/html\r\n"
    b"Content-Length: 150\r\n"
    b"Connection: close\r\n\r\n"
    b"<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body>\r\n"
    b"<center><h1>400 Bad Request</h1></center>\r\n"
    b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
# NUL, DEL, invalid UTF-8, a terminal escape and a PNG signature: no parser should choke.
BINARY_GARBAGE: Final = b"\x00\xff\xfe\x7f\x1b[2J\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xc3\x28\r\n"
ENDLESS_LINE: Final = b"250-endless reply: this line is followed by another one\r\n"
