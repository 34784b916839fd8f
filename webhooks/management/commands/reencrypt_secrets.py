"""manage.py reencrypt_secrets: move every stored webhook secret to SCRIBE_SECRETS_KEY."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from webhooks.services import webhook_secrets_reencrypt


class Command(BaseCommand):
    help = (
        "Encrypt every stored webhook signing secret again under SCRIBE_SECRETS_KEY (run it "
        "after setting a new key, with the old one in SCRIBE_SECRETS_KEY_PREVIOUS)."
    )

    def handle(self, *args, **options):
        done, undecryptable = webhook_secrets_reencrypt()
        self.stdout.write(f"Re-encrypted {done} webhook secret(s) under the current key.")
        if undecryptable:
            raise CommandError(
                f"{len(undecryptable)} secret(s) could not be decrypted with SCRIBE_SECRETS_KEY "
                f"or SCRIBE_SECRETS_KEY_PREVIOUS (owners: {', '.join(sorted(undecryptable))}): "
                "add the key they were encrypted under to SCRIBE_SECRETS_KEY_PREVIOUS and run "
                "this again, or issue those owners new secrets."
            )
