from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0004_queue_indexes')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Account',
            name='version',
            field=fields.IntField(default=1),
        ),
    ]
