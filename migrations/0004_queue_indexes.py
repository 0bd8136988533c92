from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0003_applications')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='Application',
            index=Index(fields=['point_id', 'due_at', 'id']),
        ),
        ops.AddIndex(
            model_name='Application',
            index=Index(fields=['department_id', 'due_at', 'id']),
        ),
    ]
