"""manage.py models list | fetch | import | verify: the models the workers load.

manage.py models list                          # lanes, what is on disk, verified or not
manage.py models fetch batch                   # or a name: large-v3, Systran/…, (online)
manage.py models import /media/usb/large-v3.tar.gz --name large-v3   # offline bundle
manage.py models verify                        # checksums recorded at import/fetch
"""

from __future__ import annotations

import argparse
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from transcription.engine import EngineError
from transcription.engine.bundles import (
    lane_model_missing,
    model_fetch,
    model_import,
    model_list,
    model_verify,
)
from transcription.engine.registry import bundled_models, resolve_model
from transcription.lanes import LANES, lane_model_name


class Command(BaseCommand):
    help = "List, fetch, import (offline bundles) and verify the Whisper models."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # The top-level --help shows each action's usage, options included.
        kwargs.setdefault("epilog", __doc__.split("\n", 1)[1])
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="the lanes' models and every model on disk")
        fetch = sub.add_parser("fetch", help="download a model from the hub (needs network)")
        fetch.add_argument(
            "names", nargs="*", help="lanes (batch, realtime) or model names; default: both lanes"
        )
        imp = sub.add_parser("import", help="copy a model directory or archive into place")
        imp.add_argument("source", type=Path, help="a model directory, .tar.gz or .zip")
        imp.add_argument("--name", help="the model's name (default: the source's name)")
        imp.add_argument("--replace", action="store_true", help="overwrite a model of that name")
        verify = sub.add_parser("verify", help="check files against the recorded checksums")
        verify.add_argument("names", nargs="*", help="lanes or model names; default: both lanes")

    def handle(self, *args, **options):
        models_dir = Path(settings.SCRIBE_MODELS_DIR)
        try:
            getattr(self, f"_{options['action']}")(models_dir, options)
        except EngineError as exc:
            raise CommandError(exc.message) from None

    @staticmethod
    def _name(name: str) -> str:
        return lane_model_name(name) if name in LANES else name

    def _list(self, models_dir: Path, options) -> None:
        for lane in LANES:
            name = lane_model_name(lane)
            missing = lane_model_missing(name, models_dir=models_dir)
            where = (
                "MISSING"
                if missing
                else str(resolve_model(name, models_dir=models_dir, offline=True).path)
            )
            self.stdout.write(f"{lane:9} {name}: {where}")
        entries = model_list(models_dir)
        self.stdout.write(f"\nin {models_dir}:" if entries else f"\nno models in {models_dir}")
        for entry in entries:
            checksums = "checksums recorded" if entry.has_manifest else "no checksums"
            self.stdout.write(f"  {entry.name:40} {entry.size_mb:9.1f} MB  {checksums}")
        for bundled in bundled_models():
            # Offered, never used unasked: a lane keeps its own model until it is named.
            self.stdout.write(
                f"\nalso on disk: {bundled.name} (English only, from {bundled.source})\n"
                f"  {bundled.path}\n"
                f"  try scribe with it now: manage.py transcribe FILE --model {bundled.path}\n"
                f'  (make run FILE=… ARGS="--model {bundled.path}"), or set '
                f"SCRIBE_BATCH_MODEL / SCRIBE_REALTIME_MODEL to it"
            )

    def _fetch(self, models_dir: Path, options) -> None:
        for name in [self._name(n) for n in options["names"] or LANES]:
            path = model_fetch(name, models_dir=models_dir, offline=settings.SCRIBE_OFFLINE)
            self.stdout.write(f"{name}: {path}")

    def _import(self, models_dir: Path, options) -> None:
        target = model_import(
            options["source"],
            models_dir=models_dir,
            name=options["name"],
            replace=options["replace"],
        )
        self.stdout.write(
            f"imported {target.name} into {target}; use it with "
            f"SCRIBE_BATCH_MODEL={target.name} or SCRIBE_REALTIME_MODEL={target.name}"
        )

    def _verify(self, models_dir: Path, options) -> None:
        failed = 0
        for name in [self._name(n) for n in options["names"] or LANES]:
            path = resolve_model(name, models_dir=models_dir, offline=True).path
            result = model_verify(path)
            if result.problems:
                failed += 1
                self.stderr.write(f"{name} ({path}): FAILED")
                for problem in result.problems:
                    self.stderr.write(f"  {problem}")
            else:
                self.stdout.write(f"{name} ({path}): ok, {result.checked} files")
        if failed:
            raise CommandError(
                f"{failed} model(s) failed verification: import them again "
                "(manage.py models import PATH --name NAME --replace) or fetch them."
            )
