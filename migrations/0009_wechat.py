# Issue 11: the official account's followers (as its callback tells of them: following or not, the point of the
# last QR code scanned) and their consents to subscribe-message templates.
from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0008_announcements')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Consent',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('openid', fields.CharField(max_length=128)),
                ('template_id', fields.CharField(max_length=128)),
                ('accepted_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'wechat_consent', 'app': 'models', 'unique_together': (('openid', 'template_id'),), 'pk_attr': 'id', 'table_description': "A follower's consent to one subscribe-message template"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Follower',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('openid', fields.CharField(unique=True, max_length=128)),
                ('subscribed', fields.BooleanField(default=True)),
                ('subscribed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('unsubscribed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('scene_point', fields.ForeignKeyField('models.ServicePoint', source_field='scene_point_id', null=True, db_constraint=True, to_field='id', related_name='followers', on_delete=OnDelete.SET_NULL)),
                ('scene_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'wechat_follower', 'app': 'models', 'pk_attr': 'id', 'table_description': 'An openid that follows (or followed) the official account, as its callback said'},
            bases=['Model'],
        ),
    ]
