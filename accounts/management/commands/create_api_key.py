"""manage.py create_api_key --owner NAME [--scopes …]: print a new key once."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Scope
from accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for an owner (created if new) and print it once."

    def add_arguments(self, parser):
        parser.add_argument("--owner", required=True, help="the calling service or team")
        parser.add_argument(
            "--scopes",
            nargs="+",
            default=[Scope.TRANSCRIBE.value],
            choices=[s.value for s in Scope],
        )
        parser.add_argument("--name", default="", help="what the key is for")

    def handle(self, *args, **options):
        if not options["owner"].strip():
            raise CommandError("--owner must not be empty")
        key, secret = api_key_create(
            owner_name=options["owner"].strip(), scopes=options["scopes"], name=options["name"]
        )
        self.stderr.write(
            f"Created key {key.prefix} for {key.owner.name} with scopes "
            f"{', '.join(key.scopes)}. It is shown once:"
        )
        self.stdout.write(secret)
