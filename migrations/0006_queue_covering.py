from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

# The clerks' queue (models.applications.work_queue) reads a page in (due_at, id) order within a point or a
# department, with or without a status: the status indexes gain the id, so a page of many cases sharing a
# due date needs no sort either. On PostgreSQL the two indexes without a status also carry the other
# columns of a queue row, so a page is an index-only scan; SQLite has no INCLUDE and keeps them as they
# are, and so does the models' state: their key columns do not change, only what PostgreSQL stores beside.
QUEUE_ROW = ("status", "deadline_status", "item_id", "number", "created_at")
COVERED = {"point_id": QUEUE_ROW, "department_id": (*QUEUE_ROW, "point_id")}


def _queue_rows_in_index(include: bool):
    async def rebuild(apps, schema_editor) -> None:
        if schema_editor.DIALECT != "postgres":
            return
        model = apps.get_model("models.Application")
        for scope, row in COVERED.items():
            await schema_editor.remove_index(model, Index(fields=[scope, "due_at", "id"]))
            index = Index(fields=[scope, "due_at", "id"])
            if include:
                index.extra = " INCLUDE (" + ", ".join(f'"{column}"' for column in row) + ")"
            await schema_editor.add_index(model, index)

    return rebuild


class Migration(migrations.Migration):
    dependencies = [('models', '0005_account_version')]

    initial = False

    operations = [
        ops.RemoveIndex(
            model_name='Application',
            name=None,
            fields=['point_id', 'status', 'due_at'],
        ),
        ops.RemoveIndex(
            model_name='Application',
            name=None,
            fields=['department_id', 'status', 'due_at'],
        ),
        ops.AddIndex(
            model_name='Application',
            index=Index(fields=['point_id', 'status', 'due_at', 'id']),
        ),
        ops.AddIndex(
            model_name='Application',
            index=Index(fields=['department_id', 'status', 'due_at', 'id']),
        ),
        ops.RunPython(_queue_rows_in_index(include=True), _queue_rows_in_index(include=False)),
    ]
