from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Department',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=64)),
                ('name', fields.CharField(max_length=128)),
                ('phone', fields.CharField(default='', max_length=32)),
            ],
            options={'table': 'department', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='District',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=12)),
                ('name', fields.CharField(max_length=64)),
            ],
            options={'table': 'district', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Community',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=12)),
                ('name', fields.CharField(max_length=128)),
                ('kind', fields.CharField(max_length=16)),
                ('district', fields.ForeignKeyField('models.District', source_field='district_id', db_constraint=True, to_field='id', related_name='communities', on_delete=OnDelete.RESTRICT)),
            ],
            options={'table': 'community', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ServiceItem',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=64)),
                ('name', fields.CharField(db_index=True, max_length=128)),
                ('department', fields.ForeignKeyField('models.Department', source_field='department_id', db_constraint=True, to_field='id', related_name='items', on_delete=OnDelete.RESTRICT)),
                ('kind', fields.CharField(max_length=16)),
                ('statutory_days', fields.IntField()),
                ('promised_days', fields.IntField()),
                ('legal_basis', fields.TextField(unique=False)),
                ('fee_fen', fields.IntField(null=True)),
                ('fee_basis', fields.TextField(default='', unique=False)),
                ('channels', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('community_level', fields.BooleanField(default=False, db_index=True)),
                ('scope', fields.CharField(default='city_wide', max_length=32)),
                ('delivery_modes', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('conditions', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('process', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'service_item', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ItemMaterial',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('item', fields.ForeignKeyField('models.ServiceItem', source_field='item_id', db_constraint=True, to_field='id', related_name='materials', on_delete=OnDelete.CASCADE)),
                ('position', fields.IntField()),
                ('code', fields.CharField(max_length=32)),
                ('name', fields.CharField(max_length=128)),
                ('basis', fields.TextField(default='', unique=False)),
                ('form', fields.CharField(max_length=16)),
                ('copies', fields.IntField(default=1)),
                ('required', fields.BooleanField(default=True)),
                ('notes', fields.TextField(default='', unique=False)),
                ('sample', fields.CharField(null=True, max_length=256)),
            ],
            options={'table': 'item_material', 'app': 'models', 'unique_together': (('item', 'code'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ServicePoint',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=32)),
                ('name', fields.CharField(max_length=128)),
                ('level', fields.CharField(max_length=16)),
                ('district', fields.ForeignKeyField('models.District', source_field='district_id', db_constraint=True, to_field='id', related_name='points', on_delete=OnDelete.RESTRICT)),
                ('community', fields.ForeignKeyField('models.Community', source_field='community_id', null=True, db_constraint=True, to_field='id', related_name='points', on_delete=OnDelete.RESTRICT)),
                ('address', fields.CharField(max_length=256)),
                ('latitude', fields.FloatField()),
                ('longitude', fields.FloatField()),
                ('phone', fields.CharField(default='', max_length=32)),
                ('opening_hours', fields.CharField(default='', max_length=256)),
                ('service_tags', fields.CharField(default=',', max_length=256)),
            ],
            options={'table': 'service_point', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
