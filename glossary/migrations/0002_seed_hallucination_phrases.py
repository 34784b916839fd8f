from django.db import migrations

from glossary.flags import DEFAULT_HALLUCINATIONS


def seed(apps, schema_editor):
    Phrase = apps.get_model("glossary", "HallucinationPhrase")
    for language, phrases in DEFAULT_HALLUCINATIONS.items():
        for text in phrases:
            Phrase.objects.get_or_create(text=text, defaults={"language": language})


class Migration(migrations.Migration):
    dependencies = [("glossary", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
