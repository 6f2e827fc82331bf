"""One SMTP mail transaction (MAIL FROM, RCPT TO per recipient, DATA) over an open connection,
with each recipient's outcome as the server gave it."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass, field

from flask_campaign_retry.providers.base import (
    BatchRecipient,
    ProviderError,
    RecipientOutcome,
    RecipientResult,
)
from flask_campaign_retry.providers.smtp.replies import (
    command_error,
    is_fatal_reply,
    lost_connection,
    rcpt_outcome,
    reply_text,
)
from flask_campaign_retry.statuses import FailureKind

_LEADING_DOT = re.compile(rb"(?m)^\.")
NON_ASCII_ADDRESS = "SMTP provider: non-ASCII addresses (SMTPUTF8) are not supported"


@dataclass
class TransactionResult:
    """``results`` names the recipients the server settled; ``stop`` (when set) applies to
    every other recipient of the call, this transaction's included, and ends the call;
    ``broken`` says the connection must not be used again."""

    results: list[RecipientResult] = field(default_factory=list)
    stop: ProviderError | None = None
    broken: bool = False


def _lost(exc: BaseException) -> ProviderError:
    return ProviderError(FailureKind.TRANSIENT, lost_connection(exc))


def _dot_stuffed(body: bytes) -> bytes:
    payload = _LEADING_DOT.sub(b"..", body)
    if not payload.endswith(b"\r\n"):
        payload += b"\r\n"
    return payload + b".\r\n"


def _reset(smtp: smtplib.SMTP) -> bool:
    """RSET after an abandoned transaction; False when the connection is gone."""
    try:
        return smtp.rset()[0] == 250
    except OSError:
        return False


def _envelope_in_one_write(
    smtp: smtplib.SMTP, sender: str, targets: Sequence[BatchRecipient]
) -> list[tuple[int, bytes]]:
    """MAIL FROM and every RCPT TO in one write (the server offers PIPELINING, RFC 2920),
    then their replies in order. Replies lost to a closed connection are simply missing (the
    caller treats those recipients as not sent); the MAIL FROM reply's loss raises."""
    lines = [f"MAIL FROM:{smtplib.quoteaddr(sender)}\r\n"]
    lines += [f"RCPT TO:{smtplib.quoteaddr(r.email)}\r\n" for r in targets]
    smtp.send("".join(lines))
    replies = [smtp.getreply()]
    try:
        for _ in targets:
            replies.append(smtp.getreply())
    except OSError:
        pass
    return replies


def run_transaction(
    smtp: smtplib.SMTP,
    sender: str,
    recipients: Sequence[BatchRecipient],
    body: bytes,
    message_id: str,
    secrets: Sequence[str | None] = (),
) -> TransactionResult:
    """Send ``body`` to ``recipients`` in one transaction. Never raises for SMTP or socket
    errors: they become outcomes (see :mod:`.replies` for the rules)."""
    out = TransactionResult()
    targets: list[BatchRecipient] = []
    for recipient in recipients:
        if recipient.email.isascii():
            targets.append(recipient)
        else:
            out.results.append(
                RecipientResult(recipient.id, RecipientOutcome.REFUSED, None, NON_ASCII_ADDRESS)
            )
    if not targets:
        return out
    pipelined = smtp.has_extn("pipelining")
    try:
        if pipelined:
            replies = _envelope_in_one_write(smtp, sender, targets)
        else:
            replies = [smtp.mail(sender)]
    except OSError as exc:
        return TransactionResult(out.results, _lost(exc), broken=True)
    code, reply = replies[0]
    if code != 250:
        out.stop = command_error("MAIL FROM", code, reply, secrets)
        out.broken = code == 421 or not _reset(smtp)
        return out
    accepted: list[BatchRecipient] = []
    for index, recipient in enumerate(targets, start=1):
        try:
            if not pipelined:
                replies.append(smtp.rcpt(recipient.email))
            code, reply = replies[index]
        except OSError as exc:
            return TransactionResult(out.results, _lost(exc), broken=True)
        except IndexError:  # the connection ended before this reply (see below)
            return TransactionResult(out.results, _lost(ConnectionError()), broken=True)
        if code == 421 or is_fatal_reply(code):
            out.stop = command_error("RCPT TO", code, reply, secrets)
            out.broken = code == 421 or not _reset(smtp)
            return out
        outcome = rcpt_outcome(code)
        if outcome is RecipientOutcome.ACCEPTED:
            accepted.append(recipient)
        else:
            text = reply_text(code, reply, secrets)
            out.results.append(RecipientResult(recipient.id, outcome, code, text))
    if not accepted:
        out.broken = not _reset(smtp)
        return out
    return _data(smtp, accepted, body, message_id, out, secrets)


def _data(
    smtp: smtplib.SMTP,
    accepted: list[BatchRecipient],
    body: bytes,
    message_id: str,
    out: TransactionResult,
    secrets: Sequence[str | None],
) -> TransactionResult:
    try:
        code, reply = smtp.docmd("DATA")
    except OSError as exc:
        return TransactionResult(out.results, _lost(exc), broken=True)
    if code != 354:
        text = reply_text(code, reply, secrets)
        if code == 421 or is_fatal_reply(code):
            out.stop = command_error("DATA", code, reply, secrets)
            out.broken = code == 421 or not _reset(smtp)
            return out
        outcome = rcpt_outcome(code)
        out.results += [RecipientResult(r.id, outcome, code, text) for r in accepted]
        out.broken = not _reset(smtp)
        return out
    try:
        smtp.send(_dot_stuffed(body))
    except OSError as exc:  # the final dot did not leave: nothing can have been accepted
        return TransactionResult(out.results, _lost(exc), broken=True)
    try:
        code, reply = smtp.getreply()
    except OSError as exc:
        text = (
            f"no reply after the message was sent ({type(exc).__name__}): it may have been accepted"
        )
        out.results += [
            RecipientResult(r.id, RecipientOutcome.UNKNOWN, None, text) for r in accepted
        ]
        out.stop, out.broken = _lost(exc), True
        return out
    outcome = rcpt_outcome(code)
    text = reply_text(code, reply, secrets)
    accepted_id = message_id if outcome is RecipientOutcome.ACCEPTED else None
    out.results += [RecipientResult(r.id, outcome, code, text, accepted_id) for r in accepted]
    out.broken = code == 421
    return out
