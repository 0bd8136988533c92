from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0004_queue_indexes')]

    initial = False

    # db_default: accounts already there get 1, and during a rolling upgrade the workers still on the previous
    # release insert accounts without the column
    operations = [
        ops.AddField(
            model_name='Account',
            name='version',
            field=fields.IntField(default=1, db_default=1),
        ),
    ]
