# Settings of the babybook.com zone, which holds both environments' hosts: applied once, from the
# production configuration (../../production/main.tf), never from staging's, so the two states
# never fight over one zone.

variable "zone_id" {
  description = "The babybook.com zone."
  type        = string
}
