"""The callback's XML reader (api/wechat/callback.py `parse`, expat directly) gives what xmltodict gives for
every kind of message WeChat sends, and refuses a DTD wherever it hides."""

from __future__ import annotations

import pytest
import xmltodict

from api.wechat import callback
from api.wechat.errors import MessageInvalid
from tests.wechat.peer import event, text

OPENID = "oZhangSan0000000000000000001"

MESSAGES = [
    text(OPENID, "  我的办件进度 "),
    text(OPENID, "a < b & c"),
    event(OPENID, "subscribe", EventKey="qrscene_P360502001001", Ticket="gQH47joAAAAAAAAAASxo"),
    event(OPENID, "LOCATION", Latitude=27.8174, Longitude=114.9172, Precision=30.0),
    event(OPENID, "VIEW", EventKey="https://ywt.example.cn/h5/cases", MenuId=""),
    event(
        OPENID,
        "subscribe_msg_popup_event",
        SubscribeMsgPopupEvent="<List><TemplateId><![CDATA[t1]]></TemplateId>"
        "<SubscribeStatusString><![CDATA[accept]]></SubscribeStatusString><PopupScene>2</PopupScene></List>"
        "<List><TemplateId><![CDATA[t2]]></TemplateId>"
        "<SubscribeStatusString><![CDATA[reject]]></SubscribeStatusString><PopupScene>2</PopupScene></List>",
    ),
    event(
        OPENID,
        "subscribe_msg_change_event",
        SubscribeMsgChangeEvent="<List><TemplateId><![CDATA[t1]]></TemplateId>"
        "<SubscribeStatusString><![CDATA[reject]]></SubscribeStatusString></List>",
    ),
    event(
        OPENID,
        "pic_sysphoto",
        EventKey="PHOTO",
        SendPicsInfo="<Count>2</Count><PicList><item><PicMd5Sum><![CDATA[a]]></PicMd5Sum></item>"
        "<item><PicMd5Sum><![CDATA[b]]></PicMd5Sum></item></PicList>",
    ),
    event(OPENID, "TEMPLATESENDJOBFINISH", MsgID=200163836, Status="failed:user block"),
]


@pytest.mark.parametrize("xml", MESSAGES)
def test_a_message_reads_as_xmltodict_reads_it(xml):
    assert callback.parse(xml.encode()) == xmltodict.parse(xml)["xml"]


def test_a_text_keeps_its_characters_and_loses_surrounding_space():
    message = callback.parse(text(OPENID, "  水费 <&> ").encode())
    assert message["Content"] == "水费 <&>"


@pytest.mark.parametrize(
    "body",
    [
        # a DOCTYPE the byte check cannot see: UTF-16, which expat decodes itself
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE xml [<!ENTITY a "x">]><xml><A>&a;</A></xml>'.encode(
            "utf-16"
        ),
        b"<xml><A>&undefined;</A></xml>",
        b"<xml><A>1</A></xml><xml/>",
        b"<other><A>1</A></other>",
        b"<xml>text only</xml>",
        b"",
        b"<xml><A>1</A>",
    ],
)
def test_what_is_not_a_plain_message_is_refused(body):
    with pytest.raises(MessageInvalid):
        callback.parse(body)


def test_a_utf16_message_is_read_so_its_refusal_above_is_the_dtds():
    body = '<?xml version="1.0" encoding="UTF-16"?><xml><A>x</A></xml>'.encode("utf-16")
    assert callback.parse(body) == {"A": "x"}


@pytest.mark.parametrize(
    "body",
    [
        b"<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><Encrypt><![CDATA[QUJD+/==]]></Encrypt></xml>",
        b"<xml>\n  <ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>\n  <Encrypt><![CDATA[QUJD]]></Encrypt>\n</xml>\n",
        # not WeChat's own form: read by the parser, with the same answer
        b"<xml><Encrypt><![CDATA[QUJD]]></Encrypt><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName></xml>",
        b"<xml><ToUserName>gh_0123456789ab</ToUserName><Encrypt>QUJD</Encrypt><Extra/></xml>",
    ],
)
def test_a_safe_mode_envelope_gives_its_encrypt_however_it_is_read(body):
    assert callback._encrypted_part(body) == xmltodict.parse(body)["xml"]["Encrypt"]


def test_an_envelope_with_a_dtd_is_refused_though_it_looks_like_wechat_s():
    body = (
        b'<!DOCTYPE xml [<!ENTITY e "x">]><xml><ToUserName><![CDATA[gh_1]]></ToUserName>'
        b"<Encrypt><![CDATA[QUJD]]></Encrypt></xml>"
    )
    with pytest.raises(MessageInvalid):
        callback._encrypted_part(body)
