"""An order workflow: charge the card, wait for shipment or cancellation (up to seven days),
then reserve each item in a child job and join the results."""

from datetime import timedelta

from pydantic import BaseModel

from gendurable import FSM, App, Await, Children, Done, Next, Stop, durable_job, step

app = App()


@durable_job(queue="warehouse")
def reserve_item(order_id: int, sku: str) -> dict[str, str]:
    return {"sku": sku, "bin": f"B-{sum(map(ord, sku)) % 97:02d}"}


class Order(FSM):
    queue = "orders"

    class State(BaseModel):
        order_id: int
        items: list[str]
        charge_id: str | None = None
        carrier: str | None = None

    @step(initial=True)
    def charge(self, state: State, ctx) -> Next:
        # A real step would call the payment provider with an idempotency key such as
        # f"order-{state.order_id}", because a crash can run this step again.
        charge_id = f"ch_{state.order_id:06d}"
        return Next("wait_for_shipment", state.model_copy(update={"charge_id": charge_id}))

    @step
    def wait_for_shipment(self, state: State, ctx) -> Await:
        return Await({"shipped", "cancelled"}, "after_shipment", timeout=timedelta(days=7))

    @step
    def after_shipment(self, state: State, ctx):
        names = {signal.name for signal in ctx.awaited}
        if "cancelled" in names:
            return Stop(f"cancelled by the customer; refund {state.charge_id}")
        if not names:
            return Stop("not shipped within seven days")
        carrier = next(s.payload["carrier"] for s in ctx.awaited if s.name == "shipped")
        children = [reserve_item.new(state.order_id, sku) for sku in state.items]
        return Children(children, "join", state.model_copy(update={"carrier": carrier}))

    @step
    def join(self, state: State, ctx) -> Done:
        bins = [child.result["bin"] for child in ctx.children if child.status == "done"]
        return Done({"order": state.order_id, "carrier": state.carrier, "bins": bins})
