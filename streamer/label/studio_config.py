"""What Label Studio shows: the labelling config, the tasks, and the answer read back.

The derived config has one ``Choices`` control named ``label`` over the item's features table
(once any class is known), a one-line ``TextArea`` named ``new_class`` for a class not listed,
and an ``Image`` of the frame once a request carried a ``payload_uri``. A task carries the item id
and the model's prediction as a pre-annotation, scored by its margin (top probability minus the
runner-up: sort the Data Manager by prediction score, ascending, for the most uncertain first).
"""

from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import quoteattr

from streamer.label.requests import LabelRequest, features_table

CONTROL = "label"  # the Choices control's name
NEW_CLASS = "new_class"  # the TextArea for a class not (yet) offered
TABLE = "features"
IMAGE = "image"
_CHOICE = re.compile(r"<Choice\b[^>]*?\bvalue=(\"[^\"]*\"|'[^']*')", re.IGNORECASE)


def labelling_config(classes: list[str], frames: bool) -> str:
    """The labelling config XML for ``classes`` (escaped), with the frame image if ``frames``.

    >>> print(labelling_config(["cat", 'a"b'], frames=False))
    <View>
      <Header value="Item $item_id: which class?"/>
      <Table name="features" value="$features"/>
      <Choices name="label" toName="features" choice="single" showInline="true">
        <Choice value="cat"/>
        <Choice value='a"b'/>
      </Choices>
      <TextArea name="new_class" toName="features" rows="1" maxSubmissions="1" placeholder="or type a class not listed"/>
    </View>
    """
    lines = ["<View>", '  <Header value="Item $item_id: which class?"/>']
    if frames:
        lines.append(f'  <Image name="{IMAGE}" value="$image"/>')
    lines.append(f'  <Table name="{TABLE}" value="$features"/>')
    if classes:  # Label Studio refuses a Choices without a Choice
        lines.append(f'  <Choices name="{CONTROL}" toName="{TABLE}" choice="single" showInline="true">')
        lines += [f"    <Choice value={quoteattr(name)}/>" for name in classes]
        lines.append("  </Choices>")
    lines.append(f'  <TextArea name="{NEW_CLASS}" toName="{TABLE}" rows="1" maxSubmissions="1" '
                 'placeholder="or type a class not listed"/>')
    lines.append("</View>")
    return "\n".join(lines)


def config_classes(config: str) -> list[str]:
    """The Choice values of a labelling config (to resume with the classes it already shows).

    >>> config_classes(labelling_config(["0", "1"], frames=True))
    ['0', '1']
    """
    from html import unescape

    return [unescape(match[1:-1]) for match in _CHOICE.findall(config or "")]


def task_for(request: LabelRequest, image_url: str | None) -> dict[str, Any]:
    """The Label Studio task of one label request, with its pre-annotation.

    >>> t = task_for(LabelRequest("a", 1, {"0": 0.3, "1": 0.7}, 4, 10.0), None)
    >>> t["data"]["item_id"], t["predictions"][0]["score"], t["predictions"][0]["result"][0]["value"]
    ('a', 0.4, {'choices': ['1']})
    """
    data: dict[str, Any] = {
        "item_id": request.id,
        "features": features_table(request.features),
        "uncertainty": round(request.uncertainty, 6),
        "reason": request.reason,
        "model_version": request.model_version,
        "requested_at": request.requested_at,
        "proba": request.proba,
    }
    if request.stream is not None:
        data["stream"] = request.stream
    if image_url is not None:
        data[IMAGE] = image_url
    task: dict[str, Any] = {"data": data}
    if request.prediction is not None:
        task["predictions"] = [{
            "model_version": str(request.model_version),
            "score": round(request.margin, 6),
            "result": [{"from_name": CONTROL, "to_name": TABLE, "type": "choices",
                        "value": {"choices": [str(request.prediction)]}}],
        }]
    return task


def answer_of(annotation: dict[str, Any]) -> str | None:
    """The class an annotation gives: the first ``choices`` result (the derived ``label``
    control first, so a config of your own may add others), else the text typed as a class not
    listed (stripped), else None.

    >>> answer_of({"result": [{"type": "choices", "from_name": "label", "value": {"choices": ["b"]}}]})
    'b'
    >>> answer_of({"result": [{"type": "textarea", "from_name": "new_class", "value": {"text": [" zebra "]}}]})
    'zebra'
    >>> answer_of({"result": []}) is None
    True
    """
    results = [r for r in annotation.get("result") or [] if isinstance(r, dict)]
    choices = sorted((r for r in results if r.get("type") == "choices"), key=lambda r: r.get("from_name") != CONTROL)
    for result in choices:
        chosen = (result.get("value") or {}).get("choices") or []
        if chosen and isinstance(chosen[0], str) and chosen[0]:
            return chosen[0]
    for result in results:
        if result.get("type") == "textarea" and result.get("from_name") == NEW_CLASS:
            texts = (result.get("value") or {}).get("text") or []
            if texts and isinstance(texts[0], str) and texts[0].strip():
                return texts[0].strip()
    return None
