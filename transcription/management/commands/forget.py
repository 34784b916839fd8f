"""manage.py forget --owner NAME [--glossaries] [--no-input]: erase everything of an owner."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Owner
from glossary.models import Glossary
from transcription.erasure import owner_forget
from transcription.models import Job


class Command(BaseCommand):
    help = (
        "Erase every job of an owner (transcripts, segments, files, records and their "
        "webhook logs); with --glossaries, delete its glossaries too. Running jobs are "
        "cancelled and erased when they stop. Asks for the owner's name as confirmation."
    )

    def add_arguments(self, parser):
        parser.add_argument("--owner", required=True, help="the owner's name, as in the admin")
        parser.add_argument(
            "--glossaries", action="store_true", help="also delete the owner's glossaries"
        )
        parser.add_argument(
            "--no-input",
            action="store_false",
            dest="interactive",
            help="do not ask for confirmation (scripts)",
        )

    def handle(self, *args, owner: str, glossaries: bool, interactive: bool, **options):
        found = Owner.objects.filter(name=owner).first()
        if found is None:
            raise CommandError(
                f"No owner is named {owner!r}: the names are listed in the admin under Owners."
            )
        jobs = Job.objects.for_owner(found).count()
        owned_glossaries = Glossary.objects.filter(owner=found)
        glossary_count = owned_glossaries.count() if glossaries else 0
        what = f"{jobs} job(s)" + (f" and {glossary_count} glossary(ies)" if glossaries else "")
        if interactive:
            answer = input(f"This erases {what} of {owner!r} for good. Type the owner's name: ")
            if answer.strip() != owner:
                raise CommandError("Not confirmed: nothing was erased.")
        deleted, stopping = owner_forget(owner=found)
        if glossaries:
            owned_glossaries.delete()
        self.stdout.write(
            f"Erased {owner!r}: {deleted} job record(s) deleted with their webhook logs"
            + (f", {glossary_count} glossary(ies) deleted" if glossaries else "")
            + (f"; {stopping} running job(s) cancelled, erased when they stop" if stopping else "")
            + "."
        )
