from django.db import migrations


def install(apps, schema_editor):
    from notes.shipped import shipped_install

    shipped_install(apps.get_model("notes", "Template"), apps.get_model("notes", "KeywordCategory"))


class Migration(migrations.Migration):
    dependencies = [("notes", "0001_initial")]
    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
