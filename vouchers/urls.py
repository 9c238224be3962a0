from django.urls import path

from vouchers import api

urlpatterns = [
    path("vouchers", api.CouponCenterView.as_view(), name="vouchers"),
    path("vouchers/grants", api.GrantView.as_view(), name="voucher-grants"),
    path(
        "vouchers/orders/<str:order_id>", api.OrderExplanationView.as_view(), name="voucher-order"
    ),
    path("vouchers/<int:voucher_id>", api.VoucherDetailView.as_view(), name="voucher"),
]
