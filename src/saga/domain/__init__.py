"""The create-order saga as business rules: steps, compensations, deadlines, money.

Nothing here performs I/O or imports anything outside the standard library.
"""
