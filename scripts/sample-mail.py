#!/usr/bin/env python3
"""Fill a test account with realistic sample mail for the demo.

    sample-mail.py --env DIR/env --user user1 --password secret1 [--seed N] [--count N]

About 200 messages (seeded, so every run makes the same mail) over six mailboxes,
nested and non-ASCII names among them: plain and multipart messages, HTML alternatives,
attachments, encoded headers, body lines starting with "From " (which mbox must quote),
flags, and INTERNALDATEs spread over the last two years.  Delivered over IMAPS with the
CA of the Dovecot fixture (tests/dovecot/start.sh).
"""

import argparse
import email.policy
import email.utils
import os
import random
import sys
import time
from email.message import EmailMessage

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))
import mmtest  # noqa: E402

MAILBOXES = [
    # name, share of the messages
    ("INBOX", 0.40),
    ("Sent", 0.15),
    ("Archive/2023", 0.15),
    ("Archive/2024", 0.12),
    ("Lists/dev-announce", 0.12),
    ("Reisen/Åland & Göteborg", 0.06),
]

PEOPLE = [
    ("Alice Martin", "alice@example.org"),
    ("Bob Nguyen", "bob@example.net"),
    ("Chloé Dubois", "chloe.dubois@example.fr"),
    ("Dmitri Volkov", "dmitri@example.com"),
    ("Eva Lindqvist", "eva.lindqvist@example.se"),
    ("Farid Haddad", "farid@example.org"),
    ("Grace O'Neill", "grace@example.ie"),
    ("Hiro Tanaka", "hiro.tanaka@example.jp"),
    ("Jürgen Weiß", "juergen.weiss@example.de"),
]
ME = ("Demo User", "user1@example.org")

SUBJECTS = [
    "Quarterly report draft", "Re: lunch on Thursday?", "Invoice {n} attached",
    "Meeting notes: roadmap review", "Your order has shipped", "Re: server migration plan",
    "Photos from the weekend", "Fwd: conference schedule", "Build {n} failed on main",
    "Reminder: dentist appointment", "Übersicht der Reisekosten", "Re: Re: budget for {y}",
    "Welcome to the team!", "Password policy update", "Café opening hours changed",
    "日本出張の件", "Question about the API", "[dev-announce] release {n}.{m} is out",
]

PARAGRAPHS = [
    "Thanks for the quick reply. I had a look at the numbers and they mostly add up; "
    "the only open question is the travel budget, which we can settle next week.",
    "Attached you will find the latest version. Let me know if anything is missing "
    "before I send it on to the rest of the group.",
    "The migration went fine overnight. Two mailboxes needed a second pass, but "
    "everything is in place now and the old server can be switched off on Friday.",
    "From what I remember, the meeting was moved to 10:30 in the small room.",
    "Could you check whether the backup job ran? The log stops at 03:12 and there is "
    "no summary mail this morning.",
    "Grüße aus Göteborg! Das Wetter ist großartig und das Essen noch besser.",
    "Wir sehen uns am Montag. Bitte bring die Unterlagen zur Übergabe mit.",
    "Here is the short version: yes, it works; no, it is not finished.",
    "From now on the weekly call starts at nine sharp.",
    "> On Tuesday you wrote:\n> Is the new release ready?\nAlmost: the changelog is the only "
    "thing left.",
]


def pick_person(rng):
    return rng.choice(PEOPLE)


def attachment_bytes(rng, kind, size):
    """Deterministic content that looks the part (magic numbers and all)."""
    body = rng.randbytes(size)
    if kind == "pdf":
        return b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + body + b"\n%%EOF\n"
    if kind == "png":
        return b"\x89PNG\r\n\x1a\n" + body
    return body


def make(rng, n, mailbox, when):
    sent = mailbox == "Sent"
    name, addr = pick_person(rng)
    msg = EmailMessage(policy=email.policy.SMTP)
    sender, rcpt = (ME, (name, addr)) if sent else ((name, addr), ME)
    msg["From"] = email.utils.formataddr(sender)
    msg["To"] = email.utils.formataddr(rcpt)
    if rng.random() < 0.2:
        msg["Cc"] = email.utils.formataddr(pick_person(rng))
    subject = rng.choice(SUBJECTS).format(n=1000 + n, m=rng.randrange(10), y=2024)
    if mailbox == "Lists/dev-announce":
        subject = f"[dev-announce] release 2.{n % 7}.{n % 5} is out"
        msg["List-Id"] = "Developer announcements <dev-announce.lists.example.org>"
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(when, localtime=False)
    msg["Message-ID"] = f"<{n}.{int(when)}@sample.mboxmirror.invalid>"
    if not sent:
        msg["Return-Path"] = f"<{addr}>"
    paras = rng.sample(PARAGRAPHS, rng.randrange(1, 4))
    text = f"Hi {rcpt[0].split()[0]},\n\n" + "\n\n".join(paras) + f"\n\n-- \n{sender[0]}\n"
    msg.set_content(text)
    if rng.random() < 0.15:
        html = "<html><body>" + "".join(f"<p>{p}</p>" for p in paras) + "</body></html>"
        msg.add_alternative(html, subtype="html")
    if rng.random() < 0.06:
        kind = rng.choice(["pdf", "png"])
        data = attachment_bytes(rng, kind, rng.randrange(2000, 60000))
        maintype, subtype = ("application", "pdf") if kind == "pdf" else ("image", "png")
        fname = f"document-{n}.pdf" if kind == "pdf" else f"photo-{n}.png"
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=fname)
    raw = msg.as_bytes()
    flags = []
    if not sent and rng.random() < 0.7:
        flags.append(r"\Seen")
    if sent:
        flags.append(r"\Seen")
    if rng.random() < 0.08:
        flags.append(r"\Flagged")
    if not sent and rng.random() < 0.15:
        flags.append(r"\Answered")
    return raw, tuple(flags)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env", required=True, help="the fixture's env file")
    ap.add_argument("--user", default="user1")
    ap.add_argument("--password", default=None, help="default: the fixture's for --user")
    ap.add_argument("--seed", type=int, default=20261121)
    ap.add_argument("--count", type=int, default=200)
    args = ap.parse_args()

    fx = mmtest.Fixture(args.env)
    password = args.password or fx.users[args.user]
    rng = random.Random(args.seed)
    # The email package draws MIME boundaries from the global generator.
    random.seed(args.seed)
    now = time.time()
    n = 0
    for name, share in MAILBOXES:
        count = max(1, round(args.count * share))
        if name != "INBOX":
            fx.create_mailbox(args.user, password, name)
        msgs, flags, dates = [], [], []
        for _ in range(count):
            n += 1
            when = now - rng.uniform(0, 2 * 365 * 86400)
            if name.startswith("Archive/"):
                year = int(name.split("/")[1])
                when = time.mktime((year, 1, 1, 0, 0, 0, 0, 0, -1)) + rng.uniform(0, 360 * 86400)
            raw, fl = make(rng, n, name, when)
            msgs.append(raw)
            flags.append(fl)
            dates.append(when)
        order = sorted(range(count), key=lambda i: dates[i])
        fx.append_many(args.user, password, name, [msgs[i] for i in order],
                       flags=[flags[i] for i in order], date=[dates[i] for i in order])
        print(f"sample-mail: {count:4d} messages in {name}")
    print(f"sample-mail: {n} messages for {args.user}")


if __name__ == "__main__":
    main()
