"""Pure rules of roombook: stays, nights, holds, bookings, errors. No I/O, no async, no clock."""
