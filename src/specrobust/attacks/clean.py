"""No attack: the images as they are (the registry's ``clean``)."""

from specrobust.attacks.registry import AttackKind, register

register(AttackKind("clean", "no attack: accuracy on the images as they are", (),
                    run=lambda model, x, y, options, batch: x,
                    gradient_steps=lambda options: 0),
         presets={"clean": {}})
