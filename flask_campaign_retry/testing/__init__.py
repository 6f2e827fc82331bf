"""Helpers for host apps' own tests: a fake Mailgun HTTP server on loopback with scripted
faults and its event log, signed Mailgun webhook bodies, and an SMTP sink with scripted faults
(``testing.smtp_sink.SMTPSink``, ``testing.smtp_faults.SMTPFault``; needs aiosmtpd, the
``test`` extra).

May import anything in the package; nothing in the package imports it.
"""
