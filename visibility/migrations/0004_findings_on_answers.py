from django.db import migrations


def every_workspace_reanalysis_pending(apps, schema_editor):
    """Answers recorded before their findings were stored on their rows have none: mark every
    workspace with answers for a full re-analysis (the visibility sweep), which writes them."""
    AnalysisState = apps.get_model("visibility", "AnalysisState")
    JobGroup = apps.get_model("agent", "JobGroup")
    workspace_ids = set(JobGroup.objects.order_by().values_list("workspace_id", flat=True).distinct())
    known = set(AnalysisState.objects.values_list("workspace_id", flat=True))
    AnalysisState.objects.bulk_create(AnalysisState(workspace_id=w) for w in workspace_ids - known)
    AnalysisState.objects.update(reanalysed_version=0)


class Migration(migrations.Migration):

    dependencies = [
        ("agent", "0008_jobitem_findings"),
        ("visibility", "0003_analysis_indexes_led_by_composites"),
    ]

    operations = [
        migrations.RunPython(every_workspace_reanalysis_pending, migrations.RunPython.noop),
        migrations.DeleteModel(name="AnalysedAnswer"),
        migrations.DeleteModel(name="CitedDomain"),
        migrations.DeleteModel(name="Mention"),
    ]
