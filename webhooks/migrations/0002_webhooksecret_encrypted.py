"""Webhook signing secrets move from plain columns to encrypted ones (scribe/encryption.py).

The rows are encrypted under the key in force when this migration runs: SCRIBE_SECRETS_KEY,
or the one derived from SECRET_KEY. Migrating backwards decrypts them into plain columns.
"""

from django.db import migrations, models

from scribe.encryption import secret_decrypt, secret_encrypt


def encrypt_secrets(apps, schema_editor):
    WebhookSecret = apps.get_model("webhooks", "WebhookSecret")
    for row in WebhookSecret.objects.all():
        row.secret_encrypted = secret_encrypt(row.secret)
        row.previous_secret_encrypted = (
            secret_encrypt(row.previous_secret) if row.previous_secret else ""
        )
        row.save(update_fields=["secret_encrypted", "previous_secret_encrypted"])


def decrypt_secrets(apps, schema_editor):
    WebhookSecret = apps.get_model("webhooks", "WebhookSecret")
    for row in WebhookSecret.objects.all():
        row.secret = secret_decrypt(row.secret_encrypted)
        row.previous_secret = (
            secret_decrypt(row.previous_secret_encrypted) if row.previous_secret_encrypted else ""
        )
        row.save(update_fields=["secret", "previous_secret"])


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhooksecret",
            name="secret_encrypted",
            field=models.TextField(default=""),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="webhooksecret",
            name="previous_secret_encrypted",
            field=models.TextField(blank=True),
        ),
        migrations.RunPython(encrypt_secrets, decrypt_secrets, elidable=False),
        # A default only so that migrating backwards can add the plain column to the rows
        # again (decrypt_secrets then fills it).
        migrations.AlterField(
            model_name="webhooksecret",
            name="secret",
            field=models.CharField(default="", max_length=100),
        ),
        migrations.RemoveField(model_name="webhooksecret", name="secret"),
        migrations.RemoveField(model_name="webhooksecret", name="previous_secret"),
    ]
